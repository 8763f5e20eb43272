"""Small asyncio pieces the loops share."""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set.

    Use this instead of ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11,
    ``wait_for`` swallows a cancellation that arrives just as the event is set, so a
    loop being stopped carries on (the relay then waited out its whole stop grace
    period). ``asyncio.timeout`` never loses the caller's cancellation.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
