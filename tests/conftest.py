"""Fixtures shared by every test: databases, buses and clocks wired like the real thing."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.bus import BatchHandler, LogBus, RawEvent, Types, UnparseableHandler  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.events import Envelope  # noqa: E402


class RecordingBus:
    """A bus that keeps what it was given and can be told to fail (a broker outage)."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.failing = False

    async def publish(self, events: Sequence[Envelope]) -> None:
        if self.failing:
            raise ConnectionError("broker unreachable")
        self.published.extend(events)

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        await self.publish([Envelope.from_json(e.value) for e in events])

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: object,
        types: object = None,
        *,
        unparseable: object = None,
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.published if e.type == event_type]


class SettledBus:
    """The embedded log as a unit test drives it: ``publish`` returns once every consumer
    group has handled the events, and what they emitted in turn (``LogBus.settle``)."""

    def __init__(self, log: LogBus) -> None:
        self.log = log
        self.relays: list[Any] = []

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: BatchHandler,
        types: Types | None = None,
        *,
        unparseable: UnparseableHandler | None = None,
    ) -> None:
        self.log.subscribe(group, topics, handler, types, unparseable=unparseable)

    async def publish(self, events: Sequence[Envelope]) -> None:
        await self.log.publish(events)
        await self.settle()

    async def settle(self) -> None:
        await self.log.settle(*self.relays)


@pytest.fixture
def recording_bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def intake_db() -> AsyncIterator[Database]:
    """The intake service's schema in an in-memory SQLite database."""
    db = Database("intake", "sqlite+aiosqlite:///:memory:")
    await db.migrate(ROOT / "services" / "intake" / "migrations")
    yield db
    await db.dispose()


def at(text: str) -> datetime:
    """A Shanghai wall-clock time as aware UTC: at('2026-02-13 16:00')."""
    from shared.calendar import SHANGHAI

    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


class Counted:
    """A module's coroutine function, counted where the module calls it; while ``returns``
    is not None, that is its answer instead of the real one's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.calls = 0
        self.returns: Any = None
        real = getattr(module, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return self.returns if self.returns is not None else await real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def counted_due_loop(
    monkeypatch: pytest.MonkeyPatch, module: Any, look: str, act: str, poll_seconds: float
) -> tuple[Counted, Counted]:
    """A due-time loop's looks and acts, counted, with its idle poll set to ``poll_seconds``."""
    monkeypatch.setattr(module, "IDLE_POLL_SECONDS", poll_seconds)
    return Counted(monkeypatch, module, look), Counted(monkeypatch, module, act)


def recorded_idle_waits(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[float]:
    """The waits a module's loop takes from its ``IdlePoll`` between idle looks, in order;
    its first wait set to 0.01 s and its most to 0.04 s when it names them so."""
    from shared.aio import IdlePoll

    if hasattr(module, "IDLE_POLL_MAX_SECONDS"):
        monkeypatch.setattr(module, "IDLE_POLL_SECONDS", 0.01)
        monkeypatch.setattr(module, "IDLE_POLL_MAX_SECONDS", 0.04)
    waits: list[float] = []

    class Recorded(IdlePoll):
        def wait(self) -> float:
            seconds = super().wait()
            waits.append(seconds)
            return seconds

    monkeypatch.setattr(module, "IdlePoll", Recorded)
    return waits


async def waits_double_then_start_over(
    waits: list[float],
    until: Callable[[Callable[[], bool], str], Awaitable[None]],
    act: Callable[[], Awaitable[None]],
) -> None:
    """A loop's recorded waits (``recorded_idle_waits``) double from 0.01 s to the most,
    0.04 s, while it finds nothing, and start over once ``act`` has given it work."""
    await until(lambda: len(waits) >= 5, "the idle looks")
    assert waits[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
    await act()
    await until(lambda: 0.01 in waits[5:], "the wait started over after acting")
    restart = waits.index(0.01, 5)
    await until(lambda: len(waits) > restart + 2, "the looks after that")
    assert waits[restart : restart + 3] == [0.01, 0.02, 0.04]
