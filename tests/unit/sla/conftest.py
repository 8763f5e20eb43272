"""A harness that runs the SLA service embedded (SQLite file, in-process bus, a manual
clock) and lets a test feed it ticket events, call its API as any role, and read what it
emitted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.sla.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus, per_event
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
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
        self.clock = ManualClock(T0)
        self.seen: list[Envelope] = []

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceContext]:
        """One life of the SLA service; a second ``running`` is a restart."""
        log = LogBus()
        await log.start()
        bus = SettledBus(log)

        async def record(envelope: Envelope) -> None:
            self.seen.append(envelope)

        bus.subscribe("observer", [TOPIC_SLA], per_event(record))
        app: FastAPI = create_service_app(SPEC, self.settings, bus=log, clock=self.clock)
        try:
            async with app.router.lifespan_context(app):
                self.bus = bus
                self.app = app
                bus.relays.append(app.state.ctx.relay)
                yield app.state.ctx
        finally:
            await log.stop()

    def overdue(self, ticket_id: str) -> list[Envelope]:
        return self.emitted("sla.overdue", ticket_id)

    def emitted(self, event_type: str, ticket_id: str) -> list[Envelope]:
        """Distinct events (by event_id): publication is at-least-once — a stop between
        sending and marking the outbox row sends it again, and consumers dedupe by id —
        so 'exactly once' means one event id."""
        unique = {
            e.event_id: e for e in self.seen if e.type == event_type and e.ticket_id == ticket_id
        }
        return list(unique.values())

    async def call(
        self,
        method: str,
        path: str,
        role: Role = Role.AGENCY,
        unit_id: str | None = None,
        json: Any = None,
        district: str | None = None,
    ) -> httpx.Response:
        """The service's API as a caller the gateway signed for (``district``: a district
        work agency, Art 3)."""
        caller = Caller(sub=f"test-{role.value}", role=role, unit_id=unit_id, district=district)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
            return await client.request(
                method,
                path,
                json=json,
                auth=SignedAs(self.settings.service_secret, caller),
            )


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def registered(
    ticket_id: str, urgency: str = "life_safety", type_: str = "help", when: Any = None
) -> Envelope:
    when = when or T0
    return TicketRegistered(
        ticket_id=ticket_id,
        channel="phone",
        type=type_,
        urgency=urgency,
        matter_code="GAS-001",
        district="120101",
        content="楼道里有很重的煤气味",
        registered_at=when,
    ).envelope(producer="intake", occurred_at=when)


def dispatched(
    ticket_id: str,
    urgency: str = "life_safety",
    minutes: int = 1,
    *,
    type_: str = "help",
    round_: int = 1,
    dispatch_no: int = 1,
    unit_id: str = "city-gas",
    start: Any = None,
    statutory_period: str | None = None,
) -> Envelope:
    when = (start or T0) + timedelta(minutes=minutes)
    return TicketDispatched(
        ticket_id=ticket_id,
        unit_id=unit_id,
        matter_code="GAS-001",
        district="120101",
        type=type_,
        urgency=urgency,
        dispatched_at=when,
        round=round_,
        dispatch_no=dispatch_no,
        statutory_period=statutory_period,
    ).envelope(producer="dispatch", occurred_at=when)


def accepted(ticket_id: str, when: Any, unit_id: str = "city-gas", round_: int = 1) -> Envelope:
    return TicketAccepted(
        ticket_id=ticket_id, unit_id=unit_id, accepted_at=when, round=round_
    ).envelope(producer="dispatch", occurred_at=when)


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
    assert isinstance(ctx.bus, LogBus)
    await ctx.bus.settle(ctx.relay)
