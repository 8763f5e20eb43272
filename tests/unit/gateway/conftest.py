"""Fixtures for the gateway tests: a users file, stand-in services (tiny FastAPI apps that
verify the gateway's signed headers with ``shared.service.get_caller``), and a gateway
mounted on them through in-process transports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.app import create_gateway_app
from gateway.users import hash_password
from shared.errors import PROBLEM_JSON, IllegalTransition, install_error_handlers
from shared.service import CallerDep
from shared.settings import Settings

FAST_ITERATIONS = 1_000  # login speed in tests; the format is the same as production's
PASSWORDS = {"op1": "op1-secret", "unit1": "unit1-secret"}


def user_entry(
    username: str,
    role: str,
    *,
    unit_id: str | None = None,
    name: str = "测试用户",
    password: str = "password",
) -> dict[str, Any]:
    return {
        "username": username,
        "name": name,
        "role": role,
        "unit_id": unit_id,
        "password_hash": hash_password(password, iterations=FAST_ITERATIONS),
    }


def gateway_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The gateway's answer when it got none from a service: a problem (RFC 9457) with
    the status and a Retry-After; its body."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    problem: dict[str, Any] = response.json()
    return problem


@pytest.fixture(name="user_entry")
def user_entry_factory() -> Callable[..., dict[str, Any]]:
    return user_entry


@pytest.fixture
def write_users(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    def write(entries: list[dict[str, Any]]) -> Path:
        path = tmp_path / "users.json"
        path.write_bytes(orjson.dumps({"users": entries}))
        return path

    return write


@pytest.fixture
def settings(write_users: Callable[[list[dict[str, Any]]], Path], tmp_path: Path) -> Settings:
    users = write_users(
        [
            user_entry("op1", "operator", name="话务员 测试", password=PASSWORDS["op1"]),
            user_entry(
                "unit1",
                "unit",
                unit_id="120101-housing",
                name="和平区住房和建设委员会",
                password=PASSWORDS["unit1"],
            ),
        ]
    )
    return Settings(
        env="test",
        jwt_secret="test-jwt-secret-of-at-least-32-bytes",
        service_secret="test-service-secret-of-at-least-32-bytes",
        jwt_ttl_minutes=5,
        users_file=str(users),
        db_url=f"sqlite+aiosqlite:///{tmp_path}/hotline.db",
        password_hash_memory_kib=1024,
    )


class Requester(BaseModel):
    phone: str


class TicketCreate(BaseModel):
    content: str
    requester: Requester


class TicketPublic(BaseModel):
    ticket_id: str
    kind: Literal["complaint", "help"]
    requester: Requester


def stand_in_service(name: str, settings: Settings, *, ready: bool = True) -> FastAPI:
    """A service in miniature: the same caller check as the real ones, echo endpoints,
    schemas with nested ``$ref``s and the health and internal paths of ``shared.service``."""
    app = FastAPI(title=f"{name} stand-in")
    app.state.ctx = SimpleNamespace(settings=settings)  # all get_caller needs of a context
    install_error_handlers(app)

    async def echo(rest: str, request: Request, caller: CallerDep) -> Response:
        body = {
            "service": name,
            "caller": caller.model_dump(mode="json"),
            "method": request.method,
            "path": request.url.path,
            "query": request.scope["query_string"].decode(),
            "body": (await request.body()).decode(),
            "content_type": request.headers.get("content-type"),
            "request_id": request.headers.get("x-request-id"),
            "idempotency_key": request.headers.get("idempotency-key"),
            "authorization": request.headers.get("authorization"),
        }
        return Response(
            orjson.dumps(body),
            status_code=201 if request.method == "POST" else 200,
            media_type="application/vnd.hotline-test+json",
            headers={"location": f"/echo/{rest}", "x-internal-only": "1"},
        )

    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        app.add_api_route(
            "/echo/{rest:path}",
            echo,
            methods=[method],
            tags=["echo"],
            operation_id=f"echo_{method.lower()}",
        )

    @app.post("/tickets", response_model=TicketPublic, status_code=201, tags=["tickets"])
    async def register(ticket: TicketCreate, caller: CallerDep) -> TicketPublic:
        return TicketPublic(ticket_id="T1", kind="help", requester=ticket.requester)

    @app.post("/tickets/{ticket_id}/accept", tags=["tickets"])
    async def accept(ticket_id: str, caller: CallerDep) -> None:
        raise IllegalTransition("ticket T1 is closed", rule="Art 11")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        status = "ready" if ready else "not_ready"
        return JSONResponse(
            {"status": status, "service": name, "database": "ok" if ready else "down"},
            status_code=200 if ready else 503,
        )

    @app.get("/internal/clock", tags=["internal"])
    async def read_clock(caller: CallerDep) -> dict[str, bool]:
        return {"controllable": False}

    return app


class FailingTransport(httpx.AsyncBaseTransport):
    """A service that cannot be reached: every request raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise self.error


class CountingTransport(httpx.AsyncBaseTransport):
    """In-process transport that counts requests per path and can fail the first few."""

    def __init__(self, app: FastAPI, *, fail_first: int = 0) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.fail_first = fail_first
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.fail_first > 0:
            self.fail_first -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
def stand_in(settings: Settings) -> Callable[..., FastAPI]:
    def make(name: str, *, ready: bool = True) -> FastAPI:
        return stand_in_service(name, settings, ready=ready)

    return make


@pytest.fixture
def failing_transport() -> type[FailingTransport]:
    return FailingTransport


@pytest.fixture
def counting_transport() -> type[CountingTransport]:
    return CountingTransport


Services = Mapping[str, FastAPI | httpx.AsyncBaseTransport]
GatewayFactory = Callable[[Services], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway_with(settings: Settings) -> GatewayFactory:
    """A client of a started gateway whose services are the given apps or transports."""

    @asynccontextmanager
    async def make(services: Services) -> AsyncIterator[httpx.AsyncClient]:
        transports = {
            name: s if isinstance(s, httpx.AsyncBaseTransport) else httpx.ASGITransport(app=s)
            for name, s in services.items()
        }
        app = create_gateway_app(settings, transports)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as client:
                yield client

    return make


@pytest.fixture
async def gateway(
    gateway_with: GatewayFactory, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in front of two stand-ins, intake and dispatch."""
    services = {
        "intake": stand_in_service("intake", settings),
        "dispatch": stand_in_service("dispatch", settings),
    }
    async with gateway_with(services) as client:
        yield client


@pytest.fixture
def login_as(gateway: httpx.AsyncClient) -> Callable[..., Any]:
    async def login(username: str) -> dict[str, str]:
        response = await gateway.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORDS[username]}
        )
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['access_token']}"}

    return login
