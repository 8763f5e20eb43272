"""The evaluation service embedded (SQLite file, in-process bus, manual clock): feed it
ticket, SLA and catalog events, call its API as any role, read what it emitted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.evaluation.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus, per_event
from shared.clock import ManualClock
from shared.events import (
    TOPIC_EVALUATION,
    DeadlineSet,
    Envelope,
    Escalated,
    Event,
    Overdue,
    Reply,
    ReturnApproved,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketRegistered,
    UnitPublished,
)
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday

CALLERS = {
    "operator": Caller(sub="operator", role=Role.OPERATOR),
    "agency": Caller(sub="agency", role=Role.AGENCY),
    # district work agencies (Art 3)
    "agency_hexi": Caller(sub="agency_hexi", role=Role.AGENCY, district="120103"),
    "agency_heping": Caller(sub="agency_heping", role=Role.AGENCY, district="120101"),
    "admin": Caller(sub="admin", role=Role.ADMIN),
    "govservice": Caller(sub="govservice", role=Role.GOVSERVICE),
    "supervisor": Caller(sub="supervisor", role=Role.SUPERVISOR),
    "supervisor2": Caller(sub="supervisor2", role=Role.SUPERVISOR),
    "unit_water": Caller(sub="unit_water", role=Role.UNIT, unit_id="city-water"),
    "unit_hexi_housing": Caller(sub="unit_hexi_housing", role=Role.UNIT, unit_id="120103-housing"),
    "unit_city_housing": Caller(sub="unit_city_housing", role=Role.UNIT, unit_id="city-housing"),
}

REPLY = Reply(
    policy_basis="《天津市供水用水条例》第二十条",
    progress="抢修完成",
    result="已恢复供水",
    contacted_at=T0,
    process="到场抢修",
    feedback="诉求人认可",
)


def _env(event: Event, producer: str, when: datetime) -> Envelope:
    return event.envelope(producer=producer, occurred_at=when)


def registered(
    tid: str,
    when: datetime = T0,
    *,
    matter: str = "WATER-001",
    district: str = "120103",
    type_: str = "help",
    flagged: bool = False,
) -> Envelope:
    return _env(
        TicketRegistered(
            ticket_id=tid,
            channel="phone",
            type=type_,  # type: ignore[arg-type]
            urgency="livelihood",
            matter_code=matter,
            district=district,
            address="河西区友谊路街道某小区3号楼",
            content="停水了",
            registered_at=when,
            flagged=flagged,
        ),
        "intake",
        when,
    )


def dispatched(
    tid: str,
    when: datetime,
    unit: str = "city-water",
    *,
    round_: int = 1,
    dispatch_no: int = 1,
    matter: str = "WATER-001",
    district: str = "120103",
    type_: str = "help",
) -> Envelope:
    return _env(
        TicketDispatched(
            ticket_id=tid,
            unit_id=unit,
            matter_code=matter,
            district=district,
            type=type_,  # type: ignore[arg-type]
            urgency="livelihood",
            dispatched_at=when,
            round=round_,
            dispatch_no=dispatch_no,
        ),
        "dispatch",
        when,
    )


def accepted(tid: str, when: datetime, unit: str = "city-water", round_: int = 1) -> Envelope:
    return _env(
        TicketAccepted(ticket_id=tid, unit_id=unit, accepted_at=when, round=round_),
        "dispatch",
        when,
    )


def completed(
    tid: str, when: datetime, unit: str = "city-water", round_: int = 1, type_: str = "help"
) -> Envelope:
    return _env(
        TicketCompleted(
            ticket_id=tid,
            unit_id=unit,
            completed_at=when,
            round=round_,
            type=type_,  # type: ignore[arg-type]
            reply=REPLY,
        ),
        "dispatch",
        when,
    )


def returned(tid: str, when: datetime, unit: str) -> Envelope:
    return _env(
        ReturnApproved(ticket_id=tid, unit_id=unit, decided_by="agency", decided_at=when),
        "dispatch",
        when,
    )


def deadline_set(
    tid: str, clock: str, started: datetime, deadline: datetime, unit: str | None, round_: int = 1
) -> Envelope:
    return _env(
        DeadlineSet(
            ticket_id=tid,
            clock=clock,  # type: ignore[arg-type]
            round=round_,
            unit_id=unit,
            started_at=started,
            deadline=deadline,
            period="30m",
        ),
        "sla",
        started,
    )


def overdue(
    tid: str, clock: str, deadline: datetime, unit: str | None = "city-water", round_: int = 1
) -> Envelope:
    when = deadline + timedelta(seconds=1)
    return _env(
        Overdue(
            ticket_id=tid,
            clock=clock,  # type: ignore[arg-type]
            round=round_,
            unit_id=unit,
            deadline=deadline,
            detected_at=when,
            late_seconds=1.0,
        ),
        "sla",
        when,
    )


def escalated(
    tid: str, level: int, when: datetime, unit: str = "120103-housing", clock: str = "acceptance"
) -> Envelope:
    return _env(
        Escalated(
            ticket_id=tid,
            clock=clock,  # type: ignore[arg-type]
            round=1,
            unit_id=unit,
            level=level,
            supervision_kind="ticket" if level == 1 else "written",
            deadline=when - timedelta(hours=1),
            escalated_at=when,
        ),
        "sla",
        when,
    )


def unit(unit_id: str, name: str, level: str, parent: str | None = None) -> Envelope:
    return UnitPublished(
        unit_id=unit_id, name=name, level=level, parent_id=parent, industry="housing"
    ).envelope(producer="dispatch", occurred_at=T0, ticket_id=unit_id)


UNITS = [
    unit("city-housing", "天津市住房和城乡建设委员会", "city"),
    unit("120103-housing", "河西区住房和建设委员会", "district", parent="city-housing"),
    unit("city-water", "天津水务集团有限公司", "city"),
]


class Evaluation:
    """One running evaluation service."""

    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
        self.clock = ManualClock(T0)
        self.seen: list[Envelope] = []
        self.files = tmp / "evidence"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Evaluation]:
        """One life of the service; a second ``running`` is a restart."""
        log = LogBus()
        await log.start()
        bus = SettledBus(log)

        async def record(envelope: Envelope) -> None:
            self.seen.append(envelope)

        bus.subscribe("observer", [TOPIC_EVALUATION], per_event(record))
        app: FastAPI = create_service_app(SPEC, self.settings, bus=log, clock=self.clock)
        try:
            async with app.router.lifespan_context(app):
                self.bus, self.app = bus, app
                self.ctx: ServiceContext = app.state.ctx
                bus.relays.append(self.ctx.relay)
                yield self
        finally:
            await log.stop()

    async def feed(self, *envelopes: Envelope) -> None:
        await self.bus.publish(list(envelopes))

    async def call(
        self, method: str, path: str, who: str = "agency", **kwargs: Any
    ) -> httpx.Response:
        caller = CALLERS[who]
        auth = SignedAs(self.settings.service_secret, caller)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evaluation") as c:
            response = await c.request(method, path, auth=auth, **kwargs)
        await self.bus.settle()
        return response

    def emitted(self, event_type: str, ticket_id: str | None = None) -> list[Envelope]:
        """Each event once: the relay publishes at least once, consumers dedupe by id."""
        unique = {e.event_id: e for e in self.seen}
        return [
            e
            for e in unique.values()
            if e.type == event_type and (ticket_id is None or e.ticket_id == ticket_id)
        ]


@pytest.fixture
def evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Evaluation:
    monkeypatch.setenv("HOTLINE_EVALUATION_FILES_DIR", str(tmp_path / "evidence"))
    monkeypatch.setenv("HOTLINE_EVALUATION_MAX_FILE_BYTES", "2048")
    return Evaluation(tmp_path)


@pytest.fixture
async def service(evaluation: Evaluation) -> AsyncIterator[Evaluation]:
    async with evaluation.running() as running:
        await running.feed(*UNITS)
        yield running


async def handled(
    service: Evaluation,
    tid: str,
    *,
    start: datetime = T0,
    unit: str = "city-water",
    type_: str = "help",
) -> None:
    """A ticket registered, dispatched, accepted and completed on time."""
    await service.feed(
        registered(tid, start, type_=type_),
        dispatched(tid, start + timedelta(minutes=5), unit, type_=type_),
        accepted(tid, start + timedelta(minutes=10), unit),
        completed(tid, start + timedelta(hours=2), unit, type_=type_),
    )
