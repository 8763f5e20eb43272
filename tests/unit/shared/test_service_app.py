"""A service's app (shared/direct.py ``ServiceApp``): an HTTP request goes from the server
straight to the service's own layers, past FastAPI's and starlette's outer ones (telemetry,
a body limit: off in a service), and is answered exactly as the same app built as a plain
``FastAPI`` answers it: problem details for every refusal and for a bug, the route's metrics,
the access guard's refusals, the bug still raised to the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware

import shared.service
from shared.access import public
from shared.direct import ServiceApp
from shared.errors import IllegalTransition
from shared.http_server import NO_FASTAPI_TELEMETRY
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def _router() -> APIRouter:
    router = APIRouter(prefix="/t")

    @router.get("/fine")
    @public()
    async def fine() -> dict[str, str]:
        return {"status": "fine"}

    @router.get("/bug")
    @public()
    async def bug() -> None:
        raise RuntimeError("a bug")

    @router.get("/conflict")
    @public()
    async def conflict() -> None:
        raise IllegalTransition("not now", rule="Art 0")

    @router.get("/outage")
    @public()
    async def outage() -> None:
        raise ConnectionRefusedError("the database is down")

    @router.get("/undeclared")
    async def undeclared() -> None:
        raise AssertionError("no caller may reach it")

    @router.post("/echo")
    @public()
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return router


def _app(monkeypatch: pytest.MonkeyPatch | None = None) -> FastAPI:
    """The test service; built as a plain FastAPI when ``monkeypatch`` is given."""
    if monkeypatch is not None:
        monkeypatch.setattr(shared.service, "ServiceApp", FastAPI)
    spec = ServiceSpec(name="things", title="things", migrations=Path("."), routers=[_router()])
    app = create_service_app(spec, Settings(env="test"))
    if monkeypatch is not None:
        monkeypatch.undo()
    assert isinstance(app, ServiceApp) is (monkeypatch is None)
    return app


async def _get(app: Any, method: str, path: str, raise_bugs: bool = False) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_bugs)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(
            method, path, headers={"x-request-id": "trace-1"}, content=b"x" * 10
        )


def _seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    body: Any = response.content
    if response.headers.get("content-type", "").endswith("json"):
        body = orjson.loads(body)
    return response.status_code, list(response.headers.multi_items()), body


PATHS = {
    "served": ("GET", "/t/fine"),
    "a bug (500)": ("GET", "/t/bug"),
    "a refusal (409)": ("GET", "/t/conflict"),
    "a database outage (503)": ("GET", "/t/outage"),
    "a route declaring no access (403)": ("GET", "/t/undeclared"),
    "no such path (404)": ("GET", "/t/nowhere"),
    "no such method (405)": ("DELETE", "/t/fine"),
    "a body": ("POST", "/t/echo"),
}


@pytest.mark.parametrize("case", PATHS)
async def test_a_service_answers_as_the_same_app_built_as_fastapi(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    method, path = PATHS[case]
    served = await _get(_app(), method, path)
    by_fastapi = await _get(_app(monkeypatch), method, path)
    assert _seen(served) == _seen(by_fastapi)
    if served.status_code >= 400:
        assert served.headers["content-type"] == "application/problem+json"


async def test_a_services_requests_skip_fastapis_outer_layers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered: list[str] = []
    for layer in (ExceptionTelemetryMiddleware, AppBodyLimitMiddleware):
        call = layer.__call__

        async def counted(self: Any, scope: Any, *args: Any, call: Any = call) -> None:
            entered.append(f"{type(self).__name__} {scope['type']}")
            await call(self, scope, *args)

        monkeypatch.setattr(layer, "__call__", counted)
    app = _app()
    for path in ("/t/fine", "/t/conflict", "/t/nowhere"):
        await _get(app, "GET", path)
    assert entered == []
    assert app._edge not in (None, False)  # the short way, on the FastAPI pinned here

    plain = FastAPI(telemetry=NO_FASTAPI_TELEMETRY)  # what the count sees of FastAPI's way
    await _get(plain, "GET", "/")
    assert entered == ["ExceptionTelemetryMiddleware http", "AppBodyLimitMiddleware http"]


async def test_a_bug_is_answered_then_raised_to_the_server_and_counted() -> None:
    app = _app()
    with pytest.raises(RuntimeError, match="a bug"):
        await _get(app, "GET", "/t/bug", raise_bugs=True)
    answered = await _get(app, "GET", "/t/bug")
    assert answered.status_code == 500
    assert answered.json()["title"] == "Internal error"
    assert answered.json()["trace_id"] == "trace-1"
    body, _ = app.state.metrics.exposition()
    assert b'_count{method="GET",route="/t/bug",status="500"} 2.0' in body


@pytest.mark.parametrize(
    "options",
    [{"max_body_size": 4}, {}],  # a body limit; FastAPI's telemetry (on unless told)
    ids=["a body limit", "telemetry"],
)
async def test_an_app_whose_outer_layers_work_goes_fastapis_whole_way(
    options: dict[str, Any],
) -> None:
    if options:
        options["telemetry"] = NO_FASTAPI_TELEMETRY
    app = ServiceApp(**options)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    answered = await _get(app, "POST", "/echo")
    assert app._edge is False
    assert answered.status_code == (413 if options else 200)
