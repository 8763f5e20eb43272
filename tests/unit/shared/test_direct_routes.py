"""``@direct`` routes (shared/direct.py): served past FastAPI's router, they answer every
request exactly as the same route served by FastAPI does — access guard, dependencies,
refusals as problem details, the response model's JSON, the route's metrics — and leave
what they do not serve (a body that does not validate, another content type) to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, status
from pydantic import BaseModel, ConfigDict, Field

from shared.access import access
from shared.auth import Caller, Role, VerifyCaller, sign_headers
from shared.direct import DirectRoutes, direct
from shared.errors import IllegalTransition
from shared.service import ServiceSpec, create_service_app, get_caller
from shared.settings import Settings

OPERATOR = Caller(sub="op", role=Role.OPERATOR)
SUPERVISOR = Caller(sub="sv", role=Role.SUPERVISOR)


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=20)
    count: int = 0


class ThingPublic(BaseModel):
    name: str
    count: int
    by: str
    kind: str = Field(serialization_alias="type")


async def _caller(request: Request) -> Caller:
    return await get_caller(request)


async def _label(request: Request) -> str:
    return request.headers.get("x-label", "none")


CallerDep = Annotated[Caller, Depends(_caller)]
LabelDep = Annotated[str, Depends(_label)]


async def thing(data: Thing, caller: Caller, label: str) -> Any:
    if data.name == "conflict":
        raise IllegalTransition("not now", rule="Art 0: a test's rule")
    if data.name == "boom":
        raise RuntimeError("a bug")
    if data.name == "dict":  # an answer FastAPI validates into the response model
        return {"name": data.name, "count": data.count, "by": caller.sub, "kind": label}
    return ThingPublic(name=data.name, count=data.count, by=caller.sub, kind=label)


def things_router(prefix: str, *, marked: bool) -> APIRouter:
    """The same route twice: once ``@direct``, once served by FastAPI."""
    router = APIRouter(prefix=prefix)

    @access(Role.OPERATOR)
    async def make_thing(data: Thing, caller: CallerDep, label: LabelDep) -> Any:
        return await thing(data, caller, label)

    endpoint = direct(make_thing) if marked else make_thing
    router.post("/things", status_code=status.HTTP_201_CREATED, response_model=ThingPublic)(
        endpoint
    )
    return router


@pytest.fixture
def app() -> FastAPI:
    settings = Settings(env="test")
    spec = ServiceSpec(
        name="things",
        title="things",
        migrations=Path("."),
        routers=[things_router("/direct", marked=True), things_router("/router", marked=False)],
    )
    app = create_service_app(spec, settings)

    class Ctx:  # no lifespan: no database, no bus
        nonces = None

    Ctx.settings = settings  # type: ignore[attr-defined]
    app.state.ctx = Ctx()
    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def post(
    http: httpx.AsyncClient,
    app: FastAPI,
    path: str,
    body: bytes,
    *,
    caller: Caller | None = OPERATOR,
    content_type: str | None = "application/json",
) -> httpx.Response:
    headers = {"x-request-id": "trace-1", "x-label": "blue"}
    if content_type is not None:
        headers["content-type"] = content_type
    if caller is not None:
        settings = app.state.ctx.settings
        headers.update(sign_headers(settings.service_secret, caller, "POST", path, body=body))
    return await http.post(path, content=body, headers=headers)


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    """What a client sees, the route's own path aside (problem details name it)."""
    body: Any = response.content
    if response.headers.get("content-type", "").endswith("json"):
        body = orjson.loads(response.content)
        if isinstance(body, dict) and "instance" in body:
            body["instance"] = body["instance"].replace("/direct/", "/").replace("/router/", "/")
    return response.status_code, list(response.headers.multi_items()), body


def json(**fields: Any) -> bytes:
    return orjson.dumps(fields)


CASES: dict[str, tuple[bytes, dict[str, Any]]] = {
    "served": (json(name="a", count=2), {}),
    "a dict answer, validated into the model": (json(name="dict"), {}),
    "a refusal of the handler (409)": (json(name="conflict"), {}),
    "a bug (500)": (json(name="boom"), {}),
    "a role the route does not name (403)": (json(name="a"), {"caller": SUPERVISOR}),
    "no signed caller (401)": (json(name="a"), {"caller": None}),
    "a field the model refuses (422)": (json(name="a", extra=1), {}),
    "a body that is no JSON (422)": (b'{"name": ', {}),
    "no JSON and no caller: FastAPI's order of checks": (b"{", {"caller": None}),
    "a refused body from a refused role": (json(name=""), {"caller": SUPERVISOR}),
    "an empty body": (b"", {}),
    "another content type": (json(name="a"), {"content_type": "text/plain"}),
    "no content type": (json(name="a"), {"content_type": None}),
    "JSON with a charset": (json(name="a"), {"content_type": "application/json; charset=utf-8"}),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_direct_route_answers_as_fastapi_serves_the_same_route(
    app: FastAPI, http: httpx.AsyncClient, case: str
) -> None:
    body, options = CASES[case]
    served = await post(http, app, "/direct/things", body, **options)
    by_fastapi = await post(http, app, "/router/things", body, **options)
    assert answer(served) == answer(by_fastapi)


async def test_the_answer_is_the_response_model_by_alias_with_the_routes_status(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    r = await post(http, app, "/direct/things", json(name="a", count=2))
    assert r.status_code == 201
    assert r.json() == {"name": "a", "count": 2, "by": "op", "type": "blue"}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "trace-1"  # the edge's trace id, as on every route


async def test_a_direct_route_is_counted_under_its_template(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    await post(http, app, "/direct/things", json(name="a"))
    await post(http, app, "/direct/things", json(name="conflict"))
    samples = {
        (s.labels["route"], s.labels["status"], s.value)
        for metric in app.state.metrics.registry.collect()
        for s in metric.samples
        if s.name == "hotline_http_request_duration_seconds_count"
    }
    assert ("/direct/things", "201", 1.0) in samples
    assert ("/direct/things", "409", 1.0) in samples


async def test_only_what_fastapi_would_refuse_goes_on_to_fastapi(app: FastAPI) -> None:
    """The layer itself: a request it serves never reaches the app behind it; one it does
    not serve reaches it with its whole body."""
    passed: list[bytes] = []

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        passed.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = VerifyCaller(
        DirectRoutes(behind, fastapi=app), secret=app.state.ctx.settings.service_secret
    )

    async def in_the_app(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # as the app puts itself in every scope
        await layer(scope, receive, send)

    transport = httpx.ASGITransport(app=in_the_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        served = await post(client, app, "/direct/things", json(name="a"))
        refused = await post(client, app, "/direct/things", json(name="a", extra=1))
        plain = await post(client, app, "/router/things", json(name="a"))
    assert served.status_code == 201
    assert (refused.status_code, plain.status_code) == (299, 299)
    assert passed == [json(name="a", extra=1), json(name="a")]


def test_a_route_it_could_not_serve_as_fastapi_does_is_refused_when_the_app_is_built() -> None:
    router = APIRouter()

    @router.post("/things/{thing_id}", response_model=ThingPublic)
    @direct
    async def with_a_path_parameter(thing_id: str, data: Thing) -> ThingPublic:
        raise AssertionError

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(TypeError, match="fixed path"):
        DirectRoutes(app.router, fastapi=app)
