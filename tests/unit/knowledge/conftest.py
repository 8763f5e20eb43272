"""A harness that runs the knowledge service embedded (SQLite, in-process bus, a manual
clock), calls its API as any role, and reads what it emitted; and factories for Chinese
entries."""

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

from services.knowledge.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus, per_event
from shared.clock import ManualClock
from shared.events import TOPIC_KNOWLEDGE, Envelope
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday
HEPING_HOUSING = "120101-housing"
HEXI_HOUSING = "120103-housing"

AGENCY = Caller(sub="agency", role=Role.AGENCY)
ADMIN = Caller(sub="admin", role=Role.ADMIN)
OPERATOR = Caller(sub="operator", role=Role.OPERATOR)
HEPING = Caller(sub="unit_heping_housing", role=Role.UNIT, unit_id=HEPING_HOUSING)
HEXI = Caller(sub="unit_hexi_housing", role=Role.UNIT, unit_id=HEXI_HOUSING)


def entry(
    title: str = "和平区老旧小区加装电梯申请流程",
    body: str = (
        "和平区老旧小区住宅加装电梯，由业主自愿申请，经本单元房屋专有部分面积占比三分之二以上"
        "且人数占比三分之二以上的业主同意后，向街道办事处提交申请材料。"
    ),
    *,
    kind: str = "service_guide",
    valid_from: datetime = T0,
    valid_until: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A complete entry as a unit would send it (Art 16 elements filled in)."""
    return {
        "kind": kind,
        "title": title,
        "body": body,
        "legal_basis": "《天津市既有住宅加装电梯工作实施方案》",
        "scope": "和平区行政区域内已建成投入使用、未设电梯的四层及以上住宅",
        "applicable_subjects": "住宅业主",
        "conditions": "满足规划、消防、结构安全要求",
        "related_entries": [],
        "faq": [
            {"question": "加装电梯需要多少业主同意？", "answer": "需双三分之二以上业主同意。"},
        ],
        "matter_codes": ["HOUSING-002"],
        "valid_from": valid_from.isoformat(),
        "valid_until": (valid_until or valid_from + timedelta(days=180)).isoformat(),
        **extra,
    }


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
        self.clock = ManualClock(T0)
        self.seen: list[Envelope] = []

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceContext]:
        """One life of the service; a second ``running`` is a restart."""
        log = LogBus()
        await log.start()
        bus = SettledBus(log)

        async def record(envelope: Envelope) -> None:
            self.seen.append(envelope)

        bus.subscribe("observer", [TOPIC_KNOWLEDGE], per_event(record))
        app: FastAPI = create_service_app(SPEC, self.settings, bus=log, clock=self.clock)
        try:
            async with app.router.lifespan_context(app):
                self.app = app
                self.bus = bus
                self.ctx: ServiceContext = app.state.ctx
                bus.relays.append(self.ctx.relay)
                yield self.ctx
        finally:
            await log.stop()

    def emitted(self, event_type: str, **payload: Any) -> list[Envelope]:
        return [
            e
            for e in self.seen
            if e.type == event_type and all(e.payload.get(k) == v for k, v in payload.items())
        ]

    async def call(
        self, method: str, path: str, caller: Caller = AGENCY, json: Any = None
    ) -> httpx.Response:
        """The service's API as a caller the gateway signed for."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://knowledge") as c:
            return await c.request(
                method,
                path,
                json=json,
                auth=SignedAs(self.settings.service_secret, caller),
            )

    async def create(self, caller: Caller = HEPING, **kwargs: Any) -> dict[str, Any]:
        r = await self.call("POST", "/entries", caller, entry(**kwargs))
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def feed(self, *envelopes: Envelope) -> None:
        """Events from the other services, as the bus delivers them."""
        await self.bus.publish(list(envelopes))
        await self.bus.settle()

    async def settle(self) -> None:
        """Give the scanner and the relay a chance to act, then flush the outbox."""
        for _ in range(5):
            await asyncio.sleep(0.02)
        await self.bus.settle()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    async with h.running():
        yield h


@pytest.fixture
def stopped_harness(tmp_path: Path) -> Harness:
    """Not started: the test runs it (and restarts it) itself."""
    return Harness(tmp_path)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the service's tasks run until ``condition`` holds (bounded, no fixed sleep)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
