"""One clock for every timer. Tests move a controllable clock instead of sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.aio import wait_set

# how far past its time a controllable clock's sleeper wakes (``OffsetClock._real_wait``)
TIMER_SLACK_SECONDS = 0.001


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


class _MovableClock:
    """Shared wake-up mechanism: every move wakes every sleeper, which re-checks its time."""

    def __init__(self) -> None:
        self._moved = asyncio.Event()

    def now(self) -> datetime:  # pragma: no cover - overridden
        raise NotImplementedError

    def _real_wait(self, when: datetime) -> float | None:
        return None

    def _notify(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep_until(self, when: datetime) -> None:
        while self.now() < when:
            await wait_set(self._moved, self._real_wait(when))


class ManualClock(_MovableClock):
    """Frozen time for unit tests: only ``advance``/``set`` move it."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__()
        self._now = start or datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)
        self._notify()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


class OffsetClock(_MovableClock):
    """Real time plus an offset; integration tests move it over HTTP (``/internal/clock``)."""

    def __init__(self) -> None:
        super().__init__()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def _real_wait(self, when: datetime) -> float | None:
        # a millisecond past ``when``: uvloop's timers count whole milliseconds and may fire
        # just before the time they were set for, and a wait for the sub-millisecond rest was
        # rounded to nothing, so a sleep spun ~5 times through the loop before it ended
        # (bench/idle_polls.py: channels' senders, 2.15 such waits a second while idle)
        return max((when - self.now()).total_seconds(), 0.0) + TIMER_SLACK_SECONDS

    def set(self, when: datetime) -> None:
        self._offset = when.astimezone(UTC) - datetime.now(UTC)
        self._notify()

    def advance(self, delta: timedelta) -> None:
        self._offset += delta
        self._notify()


def make_clock(kind: str, offset_seconds: float = 0.0) -> SystemClock | OffsetClock:
    if kind != "controllable":
        return SystemClock()
    clock = OffsetClock()
    clock.advance(timedelta(seconds=offset_seconds))
    return clock
