"""Small asyncio pieces the loops share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime


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


async def act_if_due(
    now: Callable[[], datetime],
    next_due: Callable[[], Awaitable[datetime | None]],
    act: Callable[[], Awaitable[int | bool]],
) -> tuple[bool, datetime | None]:
    """One round of a loop that acts on due times stored in the database: look at the next
    due time (one cheap statement), and act (a transaction) only when it has come. Returns
    whether it acted (look again at once) and else when to wake: the next due time, or
    None when the rows due were another instance's (locked or claimed), which acts on them:
    then the loop waits for its idle poll or a wake-up instead of looking again at once."""
    upcoming = await next_due()
    if upcoming is None or upcoming > now():
        return False, upcoming
    return bool(await act()), None
