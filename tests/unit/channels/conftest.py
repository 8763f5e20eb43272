"""Intake and channels embedded on SQLite behind the gateway, with a MemoryBus and a
ManualClock: outside systems are driven over HTTP exactly as they would call the platform
(API keys, WeChat's signed XML, signed CTI webhooks)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.app import create_gateway_app
from services.channels.app import SPEC as CHANNELS
from services.channels.domain import signature_header
from services.intake.app import SPEC as INTAKE
from shared.bus import LogBus, per_event
from shared.clock import ManualClock
from shared.events import (
    TOPIC_CHANNELS,
    TOPIC_TICKETS,
    Envelope,
    Event,
    MatterPublished,
)
from shared.service import ServiceContext, create_service_app
from shared.settings import Settings
from tests.conftest import SettledBus, at

T0 = at("2026-03-02 09:00")  # a Monday
PASSWORD = "demo12345"
MATTERS = [
    MatterPublished(code="WATER-001", name="停水", default_urgency="livelihood"),
    MatterPublished(code="OTHER-001", name="其他事项（待界定）", default_urgency="general"),
]


class Platform:
    """The gateway in front of intake and channels; ``seen`` is what reached the bus."""

    def __init__(
        self, gateway: FastAPI, services: dict[str, FastAPI], bus: SettledBus, clock: ManualClock
    ) -> None:
        self.gateway, self.services, self.bus, self.clock = gateway, services, bus, clock
        self.seen: list[Envelope] = []
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://hotline"
        )
        self.tokens: dict[str, str] = {}

    def ctx(self, service: str) -> ServiceContext:
        ctx: ServiceContext = self.services[service].state.ctx
        return ctx

    async def as_user(self, username: str) -> dict[str, str]:
        if username not in self.tokens:
            r = await self.http.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["access_token"]
        return {"authorization": f"Bearer {self.tokens[username]}"}

    async def create_account(self, **body: Any) -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/channels/accounts", json=body, headers=await self.as_user("admin")
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def publish(self, *events: Event) -> None:
        """Other services' events, as they arrive on the bus."""
        now = self.clock.now()
        await self.bus.publish([e.envelope(producer="dispatch", occurred_at=now) for e in events])

    async def emitted(self, event_type: str) -> list[Envelope]:
        await self.bus.settle()
        return [e for e in self.seen if e.type == event_type]

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.ctx("channels").db.engine.connect() as conn:
            return list((await conn.execute(select(table).where(*where))).all())


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Wait (bounded, in real time) for background work the test has already set off. The
    bound is generous (it is only reached when the test fails): 5 s was once too short on a
    machine at load 15 (test_a_follower_who_opts_out_gets_nothing_more)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def signed(secret: str, payload: dict[str, Any], now: Any = T0) -> tuple[bytes, dict[str, str]]:
    """A CTI webhook body and its X-Hotline-Signature, as the phone system sends them."""
    body = orjson.dumps(payload)
    return body, {
        "content-type": "application/json",
        "x-hotline-signature": signature_header(secret, int(now.timestamp()), body),
    }


@asynccontextmanager
async def running_platform(tmp: Path, **overrides: Any) -> AsyncIterator[Platform]:
    settings = Settings(
        db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db",
        env="test",
        api_key_cache_seconds=0.0,
        **overrides,
    )
    clock = ManualClock(T0)
    log = LogBus()
    await log.start()
    bus = SettledBus(log)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(log.stop)
        apps: dict[str, FastAPI] = {}
        for spec in (INTAKE, CHANNELS):
            app = create_service_app(spec, settings, bus=log, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[spec.name] = app
            bus.relays.append(app.state.ctx.relay)
        transports: dict[str, httpx.AsyncBaseTransport] = {
            name: httpx.ASGITransport(app=app, raise_app_exceptions=False)
            for name, app in apps.items()
        }
        for app in apps.values():
            app.state.ctx.extras["transports"] = transports
        gateway = create_gateway_app(settings, transports=transports)
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        platform = Platform(gateway, apps, bus, clock)
        stack.push_async_callback(platform.http.aclose)

        async def record(envelope: Envelope) -> None:
            if all(e.event_id != envelope.event_id for e in platform.seen):
                platform.seen.append(envelope)

        bus.subscribe("observer", [TOPIC_TICKETS, TOPIC_CHANNELS], per_event(record))
        await platform.publish(*MATTERS)
        yield platform


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path) as running:
        yield running


class Receiver:
    """An outside HTTP server (a unit's webhook, an SMS gateway, WeChat's template API):
    answers with the statuses it is told to, then 200; records every request."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.answered: list[int] = []
        self.port = 0

    async def endpoint(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        self.paths.append(request.url.path)
        status = self.statuses.pop(0) if self.statuses else 200
        self.answered.append(status)
        if request.url.path.startswith("/wechat"):  # WeChat answers errcode in a 200
            return JSONResponse({"errcode": 0 if status < 300 else 45009, "errmsg": "ok"})
        return Response(b"ok" if status < 300 else b"boom", status_code=status)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def url_of(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def taken(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies of ``path`` requests it answered with success."""
        return [
            orjson.loads(body)
            for p, (_, body), status in zip(self.paths, self.received, self.answered, strict=True)
            if p == path and status < 300
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        hook.port = s.getsockname()[1]
    app = Starlette(
        routes=[Route("/{path:path}", hook.endpoint, methods=["POST"])],
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=hook.port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield hook
    server.should_exit = True
    await task
