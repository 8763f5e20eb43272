"""Authorization in one place, deny by default (issue 9): every route of every service and
of the gateway declares who may call it and which objects they may touch
(shared/access.py); a route without a declaration answers 403 to everyone, and a role
not declared is refused before the route reads its body."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from gateway.app import create_gateway_app
from shared.access import Objects, access, declared, internal
from shared.auth import Caller, Role, SignedAs
from shared.service import CallerDep, ServiceSpec, create_service_app
from shared.settings import SERVICES, Settings

UNIT_SCOPES = {Objects.OWN_UNIT, Objects.CO_UNIT, Objects.LEAD_UNIT}
OBJECT_PARAMS = ("{ticket_id}", "{extension_id}", "{unit_id}", "{entry_id}", "{supervision_id}")


def routes(app: FastAPI) -> Iterator[BaseRoute]:
    def walk(found: list[BaseRoute]) -> Iterator[BaseRoute]:
        for route in found:
            included = getattr(route, "original_router", None)
            if included is not None:
                yield from walk(included.routes)
            else:
                yield route

    yield from walk(list(app.routes))


def apps() -> Iterator[tuple[str, FastAPI]]:
    settings = Settings(env="test")
    for name in SERVICES:
        spec = importlib.import_module(f"services.{name}.app").SPEC
        yield name, create_service_app(spec, settings)
    yield "gateway", create_gateway_app(settings)


def operations() -> list[tuple[str, str, Any]]:
    found = []
    for name, app in apps():
        for route in routes(app):
            if isinstance(route, APIRoute) or (
                isinstance(route, Route) and route.endpoint.__module__.startswith("gateway")
            ):
                for method in sorted(route.methods or ()):
                    found.append((name, f"{method} {route.path}", route.endpoint))
    return found


OPERATIONS = operations()


def test_every_route_of_every_app_declares_its_access() -> None:
    assert len({name for name, _, _ in OPERATIONS}) == 7
    undeclared = [f"{name} {op}" for name, op, endpoint in OPERATIONS if declared(endpoint) is None]
    assert undeclared == [], (
        f"routes without an access declaration (shared/access.py): {undeclared}"
    )


def test_a_unit_reaching_an_object_declares_which_of_its_objects() -> None:
    vague = []
    for name, op, endpoint in OPERATIONS:
        rule = declared(endpoint)
        assert rule is not None
        everyone = rule.roles == frozenset(Role)  # public information (the catalog)
        if Role.UNIT in rule.roles and not everyone and any(p in op for p in OBJECT_PARAMS):
            if not UNIT_SCOPES & set(rule.objects):
                vague.append(f"{name} {op}")
    assert vague == []


class Body(BaseModel):
    text: str


def probe_app() -> FastAPI:
    router = APIRouter()

    @router.post("/undeclared")
    async def undeclared(body: Body, caller: CallerDep) -> dict[str, str]:
        return {"who": caller.sub}

    @router.post("/admins")
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def admins(body: Body, caller: CallerDep) -> dict[str, str]:
        return {"who": caller.sub}

    @router.get("/gateway-only")
    @internal()
    async def gateway_only(caller: CallerDep) -> dict[str, str]:
        return {"who": caller.sub}

    spec = ServiceSpec(name="probe", title="probe", migrations=Path("."), routers=[router])
    return create_service_app(spec, Settings(env="test"))


async def test_undeclared_routes_and_undeclared_roles_are_refused_before_the_body() -> None:
    app = probe_app()
    secret = Settings(env="test").service_secret
    admin = Caller(sub="root", role=Role.ADMIN)
    operator = Caller(sub="wang", role=Role.OPERATOR)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:

        async def call(who: Caller, method: str, path: str, **kw: Any) -> int:
            r = await client.request(method, path, auth=SignedAs(secret, who), **kw)
            return r.status_code

        assert await call(admin, "POST", "/undeclared", json={"text": "x"}) == 403
        assert await call(operator, "POST", "/admins", json={}) == 403  # not 422
        assert await call(admin, "POST", "/admins", json={}) == 422
        assert await call(admin, "POST", "/admins", json={"text": "x"}) == 200
        assert await call(admin, "GET", "/gateway-only") == 404
        gateway = Caller(sub="gateway", role=Role.ADMIN, internal=True)
        assert await call(gateway, "GET", "/gateway-only") == 200


@pytest.mark.parametrize("kind", ["public", "internal"])
def test_public_and_internal_routes_are_the_expected_few(kind: str) -> None:
    found = sorted(
        {f"{op}" for _, op, endpoint in OPERATIONS if getattr(declared(endpoint), kind, False)}
    )
    expected = {
        "public": [
            "GET /api/v1/{service}/{path:path}",  # the proxy: each service decides
            "GET /cases/public",
            "GET /docs",
            "GET /healthz",
            "GET /metrics",
            "GET /open311/v2/requests.{fmt}",
            "GET /open311/v2/requests/{request_id}.{fmt}",
            "GET /open311/v2/services.{fmt}",
            "GET /open311/v2/services/{service_code}.{fmt}",
            "GET /open311/v2/tokens/{token}.{fmt}",
            "GET /open311/v2/{path:path}",
            "GET /openapi.json",
            "GET /readyz",
            "GET /wechat/{account_id}",
        ],
        "internal": ["GET /internal/tickets/{ticket_id}/events", "POST /internal/api-keys/verify"],
    }[kind]
    assert [op for op in found if op.startswith("GET") or kind == "internal"] == expected
