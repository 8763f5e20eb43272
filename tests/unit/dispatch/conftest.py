"""The dispatch service embedded: SQLite, the embedded log (in memory), a ManualClock,
and HTTP calls with signed caller headers — every rule driven as a client would, without a
network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.dispatch.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus, per_event
from shared.clock import ManualClock
from shared.events import (
    TOPICS,
    DeadlineSet,
    Envelope,
    RehandleRequested,
    TicketFlagged,
    TicketRegistered,
)
from shared.service import ServiceContext
from shared.settings import Settings
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday

CALLERS = {
    "operator": Caller(sub="operator", role=Role.OPERATOR),
    "agency": Caller(sub="agency", role=Role.AGENCY),
    "admin": Caller(sub="admin", role=Role.ADMIN),
    "authority": Caller(sub="authority", role=Role.AUTHORITY, industry="housing"),
    # 市级行业主管部门, each bound to its industry (Art 8)
    "authority_urban": Caller(
        sub="authority_urban", role=Role.AUTHORITY, industry="urban_management"
    ),
    "govservice": Caller(sub="govservice", role=Role.GOVSERVICE),
    # 区人民政府指定的工作机构 (Art 3): the Hexi district work agency
    "agency_hexi": Caller(sub="agency_hexi", role=Role.AGENCY, district="120103"),
    "unit_water": Caller(sub="unit_water", role=Role.UNIT, unit_id="city-water"),
    "unit_gas": Caller(sub="unit_gas", role=Role.UNIT, unit_id="city-gas"),
    "unit_heping_housing": Caller(
        sub="unit_heping_housing", role=Role.UNIT, unit_id="120101-housing"
    ),
    "unit_hexi_housing": Caller(sub="unit_hexi_housing", role=Role.UNIT, unit_id="120103-housing"),
    "unit_heping_urban": Caller(sub="unit_heping_urban", role=Role.UNIT, unit_id="120101-urban"),
    "unit_heping_market": Caller(sub="unit_heping_market", role=Role.UNIT, unit_id="120101-market"),
    "unit_heping_street": Caller(sub="unit_heping_street", role=Role.UNIT, unit_id="120101-street"),
}


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
        self.clock = ManualClock(T0)
        self.seen: list[Envelope] = []
        self.ctx: ServiceContext
        self.app: FastAPI
        self._n = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        log = LogBus()
        await log.start()
        bus = SettledBus(log)

        async def record(envelope: Envelope) -> None:
            self.seen.append(envelope)

        bus.subscribe("observer", list(TOPICS), per_event(record))
        from shared.service import create_service_app

        self.app = create_service_app(SPEC, self.settings, bus=log, clock=self.clock)
        try:
            async with self.app.router.lifespan_context(self.app):
                self.bus = bus
                self.ctx = self.app.state.ctx
                bus.relays.append(self.ctx.relay)
                await self.settle()
                yield self
        finally:
            await log.stop()

    # ---- HTTP ---------------------------------------------------------------------

    async def call(
        self, who: str, method: str, path: str, json: Any = None, **params: Any
    ) -> httpx.Response:
        auth = SignedAs(self.settings.service_secret, CALLERS[who])
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
            response = await client.request(
                method, path, json=json, auth=auth, params=params or None
            )
        if method != "GET":
            await self.settle()  # what the call emitted is on the bus before the test looks
        return response

    async def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        return await self.call(who, "GET", path, **params)

    async def post(self, who: str, path: str, json: Any = None) -> httpx.Response:
        return await self.call(who, "POST", path, json=json if json is not None else {})

    async def put(self, who: str, path: str, json: Any = None) -> httpx.Response:
        return await self.call(who, "PUT", path, json=json if json is not None else {})

    async def ticket(self, ticket_id: str, who: str = "operator") -> dict[str, Any]:
        r = await self.get(who, f"/tickets/{ticket_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    # ---- events -------------------------------------------------------------------

    def next_id(self) -> str:
        self._n += 1
        return f"TJ2026030200{self._n:04d}"

    async def publish(self, *envelopes: Envelope) -> None:
        await self.bus.publish(list(envelopes))
        await self.settle()

    async def settle(self) -> None:
        """Everything emitted so far is published and handled by every consumer."""
        await self.bus.settle()

    async def register(
        self,
        matter_code: str = "WATER-001",
        district: str = "120103",
        *,
        content: str = "从早上八点开始停水，家里有老人",
        urgency: str = "livelihood",
        flagged: bool = False,
        type_: str = "help",
        ticket_id: str | None = None,
    ) -> str:
        """Registers a ticket (``ticket_id``: one taken with ``next_id``, of which other
        events were heard first); returns its id."""
        ticket_id = ticket_id or self.next_id()
        now = self.clock.now()
        await self.publish(
            TicketRegistered(
                ticket_id=ticket_id,
                channel="phone",
                type=type_,  # type: ignore[arg-type]
                urgency=urgency,  # type: ignore[arg-type]
                matter_code=matter_code,
                district=district,
                content=content,
                registered_at=now,
                flagged=flagged,
            ).envelope(producer="intake", occurred_at=now)
        )
        return ticket_id

    async def flag(self, ticket_id: str) -> None:
        now = self.clock.now()
        await self.publish(
            TicketFlagged(
                ticket_id=ticket_id,
                flagged_at=now,
                keywords=["跳楼"],
                district="120103",
                matter_code="WATER-001",
            ).envelope(producer="intake", occurred_at=now)
        )

    async def deadline(
        self,
        ticket_id: str,
        clock: str,
        deadline: datetime,
        *,
        started_at: datetime,
        round_: int = 1,
    ) -> None:
        now = self.clock.now()
        await self.publish(
            DeadlineSet(
                ticket_id=ticket_id,
                clock=clock,  # type: ignore[arg-type]
                round=round_,
                started_at=started_at,
                deadline=deadline,
                period="30m",
            ).envelope(producer="sla", occurred_at=now)
        )

    async def rehandle(self, ticket_id: str, unit_id: str) -> None:
        now = self.clock.now()
        await self.publish(
            RehandleRequested(
                ticket_id=ticket_id,
                unit_id=unit_id,
                requested_by="agency",
                requested_at=now,
                reason="诉求人对处理结果不满意",
            ).envelope(producer="evaluation", occurred_at=now)
        )

    def events(self, event_type: str, ticket_id: str | None = None) -> list[Envelope]:
        return [
            e
            for e in self.seen
            if e.type == event_type and (ticket_id is None or e.ticket_id == ticket_id)
        ]

    def ticket_events(self, ticket_id: str) -> list[str]:
        return [e.type for e in self.seen if e.ticket_id == ticket_id]


def reply(contacted_at: datetime) -> dict[str, Any]:
    return {
        "policy_basis": "《天津市供水用水条例》",
        "progress": "已派维修人员抢修",
        "result": "已恢复供水",
        "contacted_at": contacted_at.isoformat(),
        "process": "接单后派抢修班组到场，更换阀门",
        "feedback": "诉求人表示满意",
    }


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path).running() as harness:
        yield harness


MINUTE = timedelta(minutes=1)
