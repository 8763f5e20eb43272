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


class IdlePoll:
    """The waits of a loop that looks by itself now and then for work another instance
    left (a due time it stored, a row it queued), which nothing in this process announces:
    ``first`` seconds after the loop last found work, then twice the wait before after each
    look that found nothing, up to ``most`` (``first`` when that is less). A quiet process
    then wakes for this about once every ``most`` seconds instead of every ``first``
    (bench/idle_polls.py). What this process does itself wakes the loop at once, and a due
    time the loop has read it sleeps until, so the longer waits only delay what another
    instance stored and then failed to do itself before it stopped: by up to ``most``."""

    def __init__(self, first: float, most: float) -> None:
        self.first = first
        self.most = max(first, most)
        self.seconds = first

    def found(self) -> None:
        """The loop found work: the next idle look comes ``first`` seconds after."""
        self.seconds = self.first

    def wait(self) -> float:
        """How long to wait before the next look; each call doubles the following one."""
        seconds = self.seconds
        self.seconds = min(2 * seconds, self.most)
        return seconds
