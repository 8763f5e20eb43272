"""The SLA service as a whole, embedded: clocks start and stop on ticket events, and an
unmet deadline produces exactly one sla.overdue — moving the clock, never sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI

from services.sla.app import SPEC
from shared.bus import MemoryBus
from shared.clock import ManualClock
from shared.events import (
    TOPIC_SLA,
    Envelope,
    TicketAccepted,
    TicketDispatched,
    TicketRegistered,
)
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from tests.conftest import at

T0 = at("2026-03-02 09:00")  # a Monday


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
        self.clock = ManualClock(T0)
        self.seen: list[Envelope] = []

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceContext]:
        """One life of the SLA service; a second ``running`` is a restart."""
        bus = MemoryBus()

        async def record(envelope: Envelope) -> None:
            self.seen.append(envelope)

        bus.subscribe("observer", [TOPIC_SLA], record)
        app: FastAPI = create_service_app(SPEC, self.settings, bus=bus, clock=self.clock)
        async with app.router.lifespan_context(app):
            self.bus = bus
            yield app.state.ctx

    def overdue(self, ticket_id: str) -> list[Envelope]:
        return [e for e in self.seen if e.type == "sla.overdue" and e.ticket_id == ticket_id]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def registered(ticket_id: str, urgency: str = "life_safety") -> Envelope:
    return TicketRegistered(
        ticket_id=ticket_id,
        channel="phone",
        type="help",
        urgency=urgency,
        matter_code="GAS-001",
        district="120101",
        content="楼道里有很重的煤气味",
        registered_at=T0,
    ).envelope(producer="intake", occurred_at=T0)


def dispatched(ticket_id: str, urgency: str = "life_safety", minutes: int = 1) -> Envelope:
    at_ = T0 + timedelta(minutes=minutes)
    return TicketDispatched(
        ticket_id=ticket_id,
        unit_id="city-gas",
        matter_code="GAS-001",
        district="120101",
        type="help",
        urgency=urgency,
        dispatched_at=at_,
    ).envelope(producer="dispatch", occurred_at=at_)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the service's tasks run until ``condition`` holds (bounded, no fixed sleep)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def settle(ctx: ServiceContext) -> None:
    """Give the scanner and relay a chance to act, then flush the outbox."""
    for _ in range(5):
        await asyncio.sleep(0.02)
    await ctx.relay.drain()


async def test_an_unmet_acceptance_deadline_produces_exactly_one_overdue(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        await until(
            lambda: len([e for e in harness.seen if e.type == "sla.deadline_set"]) == 2,
            "dispatch and acceptance clocks",
        )
        harness.clock.advance(timedelta(minutes=15))  # 1 min before the 15-min deadline
        await settle(ctx)
        assert harness.overdue("TJ1") == []
        harness.clock.advance(timedelta(minutes=1, seconds=1))
        await until(lambda: len(harness.overdue("TJ1")) == 1, "sla.overdue")
        harness.clock.advance(timedelta(hours=5))
        await settle(ctx)
        [overdue] = harness.overdue("TJ1")
        assert overdue.payload["clock"] == "acceptance"
        assert overdue.payload["late_seconds"] == pytest.approx(1.0)


async def test_a_met_deadline_produces_no_overdue(harness: Harness) -> None:
    async with harness.running() as ctx:
        accepted_at = T0 + timedelta(minutes=10)
        await harness.bus.publish(
            [
                registered("TJ2"),
                dispatched("TJ2"),
                TicketAccepted(
                    ticket_id="TJ2", unit_id="city-gas", accepted_at=accepted_at
                ).envelope(producer="dispatch", occurred_at=accepted_at),
            ]
        )
        harness.clock.advance(timedelta(minutes=20))
        await settle(ctx)
        assert harness.overdue("TJ2") == []
        harness.clock.advance(timedelta(hours=2))  # completion: 2 h from acceptance
        await until(lambda: len(harness.overdue("TJ2")) == 1, "completion overdue")
        assert harness.overdue("TJ2")[0].payload["clock"] == "completion"


async def test_a_restart_loses_no_deadline(harness: Harness) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ3"), dispatched("TJ3")])
        await settle(ctx)
    # down while the deadline passes
    harness.clock.advance(timedelta(hours=1))
    async with harness.running():
        await until(lambda: len(harness.overdue("TJ3")) == 1, "overdue after restart")
    async with harness.running() as ctx:  # and a further restart does not repeat it
        await settle(ctx)
        assert len(harness.overdue("TJ3")) == 1


async def test_the_same_event_delivered_twice_starts_one_clock(harness: Harness) -> None:
    async with harness.running() as ctx:
        twice, dispatched_twice = registered("TJ4"), dispatched("TJ4")
        await harness.bus.publish([twice, twice, dispatched_twice, dispatched_twice])
        # the same fact re-sent under a new event id (a producer retry) is harmless too
        await harness.bus.publish([dispatched("TJ4")])
        await settle(ctx)
        set_events = [e for e in harness.seen if e.type == "sla.deadline_set"]
        assert [e.payload["clock"] for e in set_events] == ["dispatch", "acceptance"]
        harness.clock.advance(timedelta(hours=1))
        await until(lambda: len(harness.overdue("TJ4")) == 1, "one overdue")
        await settle(ctx)
        assert len(harness.overdue("TJ4")) == 1
