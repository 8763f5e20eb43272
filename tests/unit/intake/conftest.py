"""The intake service embedded on SQLite with the embedded log (in memory) and a
ManualClock, driven over HTTP with signed caller headers as the gateway would send them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jieba
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from services.intake import domain
from services.intake.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus, per_event
from shared.clock import ManualClock
from shared.events import (
    TOPIC_TICKETS,
    Envelope,
    Event,
    MatterPublished,
)
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday

CALLERS = {
    "operator": Caller(sub="operator", role=Role.OPERATOR, name="话务员 王丽"),
    "operator2": Caller(sub="operator2", role=Role.OPERATOR),
    "agency": Caller(sub="agency", role=Role.AGENCY),
    "admin": Caller(sub="admin", role=Role.ADMIN),
    "citizen_web": Caller(sub="citizen_web", role=Role.CITIZEN),
    "unit_water": Caller(sub="unit_water", role=Role.UNIT, unit_id="city-water"),
    "supervisor": Caller(sub="supervisor", role=Role.SUPERVISOR),
    # channel accounts (API keys): each files on its own channel only
    **{
        f"account_{channel}": Caller(
            sub=f"account:{channel}-1", role=Role.CITIZEN, channel=channel, name="渠道账号"
        )
        for channel in ("phone", "web", "wechat_official", "wechat_mini")
    },
}

MATTERS = [
    MatterPublished(code="WATER-001", name="停水", default_urgency="livelihood"),
    MatterPublished(code="HOUSE-002", name="物业服务纠纷", default_urgency="general"),
    MatterPublished(code="SOC-002", name="社会保险咨询", default_urgency="general"),
    MatterPublished(
        code="URBAN-001", name="占道经营", default_urgency="general", anonymous_allowed=True
    ),
]


def ticket(**overrides: Any) -> dict[str, Any]:
    """A valid registration body; override any field."""
    body: dict[str, Any] = {
        "channel": "phone",
        "type": "help",
        "matter_code": "WATER-001",
        "district": "120103",
        "address": "河西区友谊路街道某小区3号楼",
        "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
        "requester": {"name": "刘芳", "phone": "13920001234"},
    }
    body.update(overrides)
    return body


def consultation(**overrides: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "type": "consultation",
        "matter_code": "SOC-002",
        "content": "咨询灵活就业人员如何缴纳养老保险",
        "requester": {},
    }
    return ticket(**{**defaults, **overrides})


class Intake:
    """One running intake service; ``call`` speaks as one of ``CALLERS``."""

    def __init__(self, app: FastAPI, ctx: ServiceContext, bus: SettledBus, clock: ManualClock):
        self.app, self.ctx, self.bus, self.clock = app, ctx, bus, clock
        self.seen: list[Envelope] = []
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i")

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = SignedAs(self.ctx.settings.service_secret, CALLERS[who])
        return await self.http.request(method, path, auth=auth, **kwargs)

    async def register(self, body: dict[str, Any], who: str = "operator") -> dict[str, Any]:
        r = await self.call(who, "POST", "/tickets", json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def tickets(self, who: str = "operator", **params: Any) -> dict[str, Any]:
        r = await self.call(who, "GET", "/tickets", params=params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def publish(self, *events: Event) -> None:
        """Another service's events, as they arrive on the bus."""
        now = self.clock.now()
        await self.bus.publish([e.envelope(producer="test", occurred_at=now) for e in events])

    async def emitted(self, event_type: str | None = None) -> list[Envelope]:
        await self.bus.settle()
        return [e for e in self.seen if event_type is None or e.type == event_type]

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))


@asynccontextmanager
async def running_intake(tmp: Path, **overrides: Any) -> AsyncIterator[Intake]:
    settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test", **overrides)
    clock = ManualClock(T0)
    log = LogBus()
    await log.start()
    # stopped whatever the body raises (a failing test): the log's aiosqlite connection is
    # a thread of its own, which, left open, kept pytest from exiting after the failure
    try:
        bus = SettledBus(log)
        app = create_service_app(SPEC, settings, bus=log, clock=clock)
        async with app.router.lifespan_context(app):
            intake = Intake(app, app.state.ctx, bus, clock)
            bus.relays.append(intake.ctx.relay)

            async def record(envelope: Envelope) -> None:
                # the background relay and ``drain`` may both send a row (at-least-once)
                if all(e.event_id != envelope.event_id for e in intake.seen):
                    intake.seen.append(envelope)

            bus.subscribe("observer", [TOPIC_TICKETS], per_event(record))
            try:
                await intake.publish(*MATTERS)
                yield intake
            finally:
                await intake.http.aclose()
    finally:
        await log.stop()


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async with running_intake(tmp_path) as service:
        yield service


@pytest.fixture(scope="module")
def jieba_default() -> jieba.Tokenizer:
    """jieba on its default dictionary, in a tokenizer of its own (jieba's global one holds
    knowledge's words once knowledge is imported): the words intake stored until it moved
    to jieba-rs."""
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@pytest.fixture
def segmented(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs of text (and pieces of runs) intake's segmenter is given from now on."""
    runs: list[str] = []
    search_words = domain._search_words

    def recorded(run: str) -> list[str]:
        runs.append(run)
        return search_words(run)

    monkeypatch.setattr(domain, "_search_words", recorded)
    return runs


@contextmanager
def statements_run(intake: Intake) -> Iterator[list[str]]:
    """The SQL statements the service runs meanwhile, as sent to the database."""
    run: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        run.append(statement)

    engine = intake.ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield run
    finally:
        event.remove(engine, "before_cursor_execute", seen)
