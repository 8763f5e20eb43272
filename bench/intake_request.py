"""CPU per request of intake's HTTP layer (issue 12): POST /tickets driven in-process
through the service app's whole ASGI stack (middleware, routing, access guard,
dependencies, body validation, response) by a raw ASGI driver, with the handler replaced
by one that returns a fixed registration, so only the layer around it is measured. A bare
FastAPI route taking the same body and returning the same model is the reference.

    python bench/intake_request.py [requests per round] [rounds]

prints JSON: microseconds of CPU per request (the best round and the median), for requests
without and with an Idempotency-Key, and for the bare route. Compare two trees by running
each from its own checkout, alternating, minutes apart (the machine's speed drifts)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, status
from pydantic import TypeAdapter

from services.intake import handlers
from services.intake.app import SPEC
from services.intake.schemas import TicketCreate, TicketRegistration
from shared.auth import Caller, Role, sign_headers
from shared.http_server import NO_FASTAPI_TELEMETRY
from shared.service import create_service_app
from shared.settings import Settings

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
BODY = json.dumps(
    {
        "channel": "phone",
        "type": "complaint",
        "matter_code": "M001",
        "district": "120101",
        "address": "和平区南京路某小区",
        "content": "昨天晚上和平区南京路某小区噪音扰民，3号楼2单元楼下施工，22点10分左右很吵，"
        "噪音问题一直没有解决，影响周边居民生活，请尽快处理。",
        "requester": {"name": "王丽", "phone": "13912345678"},
    },
    ensure_ascii=False,
).encode()
CALLER = Caller(sub="op1", role=Role.OPERATOR, name="op")


def answer() -> TicketRegistration:
    data = TicketCreate.model_validate_json(BODY)
    return TicketRegistration(
        ticket_id="TJ20260115000123",
        status="registered",
        channel="phone",
        type=data.type,
        urgency="general",
        matter_code=data.matter_code,
        district=data.district,
        district_name="和平区",
        address=data.address,
        content=data.content,
        requester_name="王*",
        requester_phone="139****5678",
        anonymous=False,
        flagged=False,
        registered_at=datetime.now(UTC),
    )


class _Nonces:
    """Stands for the shared nonces of PostgreSQL: register records its own in its write."""


class _Ctx:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nonces = _Nonces()


def intake_app(settings: Settings) -> FastAPI:
    app = create_service_app(SPEC, settings)
    app.state.ctx = _Ctx(settings)  # no lifespan: no database, no bus
    return app


def bare_app(fixed: TicketRegistration) -> FastAPI:
    app = FastAPI(telemetry=NO_FASTAPI_TELEMETRY)

    @app.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=TicketRegistration)
    async def register(data: TicketCreate) -> TicketRegistration:
        return fixed

    return app


def scope(settings: Settings, key: str | None) -> dict[str, Any]:
    signed = sign_headers(settings.service_secret, CALLER, "POST", "/tickets", body=BODY)
    headers = [(b"host", b"127.0.0.1:8001"), (b"content-type", b"application/json")]
    headers += [(k.encode(), v.encode()) for k, v in signed.items()]
    if key is not None:
        headers.append((b"idempotency-key", key.encode()))
    headers.append((b"content-length", str(len(BODY)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8001),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/tickets",
        "raw_path": b"/tickets",
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


async def cpu_per_request(app: App, scopes: list[dict[str, Any]]) -> float:
    """Microseconds of this process's CPU per request; every answer must be a 201."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.process_time()
    for one in scopes:
        await app(one, receive, send)
    spent = time.process_time() - start
    assert set(statuses) == {201}, set(statuses)
    return 1e6 * spent / len(scopes)


async def main(requests: int, rounds: int) -> dict[str, Any]:
    settings = Settings(env="test")
    fixed = answer()

    answered = TypeAdapter(TicketRegistration).serializer.to_json(fixed)

    async def register_ticket(*args: Any) -> bytes:  # the handler answers the model's JSON
        return answered

    handlers.register_ticket = register_ticket  # type: ignore[assignment]
    intake, bare = intake_app(settings), bare_app(fixed)
    cases: dict[str, tuple[App, Callable[[int], str | None]]] = {
        "register_without_key": (intake, lambda i: None),
        "register_with_key": (intake, lambda i: f"key-{i}"),
        "bare_route": (bare, lambda i: None),
    }
    found: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):  # the first round warms up
        for name, (app, key) in cases.items():
            # signatures carry a fresh nonce each: made outside the measured loop
            scopes = [scope(settings, key(i)) for i in range(requests)]
            spent = await cpu_per_request(app, scopes)
            if round_:
                found[name].append(spent)
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "cpu_us_per_request": {
            name: {"best": round(min(v), 1), "median": round(statistics.median(v), 1)}
            for name, v in found.items()
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(asyncio.run(main(n, r))))
