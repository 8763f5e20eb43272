"""An outgoing sender's idle looks (for work another instance queued) come further and
further apart on the service clock while they find nothing, and start over once it sends;
work this process queues wakes it at once. The clock is moved, never slept on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from services.channels.handlers import outgoing
from services.channels.handlers.outgoing import run_sender, wake_of
from shared.clock import ManualClock

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def turns() -> None:
    """Let the sender's tasks run until they wait (the clock does not move meanwhile)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_idle_sender_looks_less_and_less_often_until_it_sends() -> None:
    clock = ManualClock(T0)
    ctx: Any = SimpleNamespace(clock=clock, extras={})
    looked: list[float] = []  # seconds after T0 of each look
    queued: list[str] = []

    async def next_due() -> datetime | None:
        looked.append((clock.now() - T0).total_seconds())
        return clock.now() if queued else None

    async def send_due() -> bool:
        if not queued:
            return False
        queued.clear()
        return True

    sender = asyncio.create_task(run_sender(ctx, "test", send_due, next_due))
    try:
        for _ in range(16):
            await turns()
            clock.advance(timedelta(seconds=1))
        await turns()
        first, most = outgoing.IDLE_POLL.total_seconds(), outgoing.IDLE_POLL_MAX.total_seconds()
        assert (first, most) == (1.0, 8.0)
        assert looked == [0.0, 1.0, 3.0, 7.0, 15.0]  # once a second before
        # work this process queues wakes it at once; after sending, the wait starts over
        queued.append("a row")
        wake_of(ctx, "test").event.set()
        await turns()
        assert not queued
        assert looked[-2:] == [16.0, 16.0]  # the look that sent, and the one after it
        for _ in range(3):
            clock.advance(timedelta(seconds=1))
            await turns()
        assert looked[-2:] == [17.0, 19.0]
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
