"""The served OpenAPI says who may call each operation (``x-roles`` and a closing sentence of
its description), and what it says is what the access guard enforces: the roles are found
here by running the guard (shared/access.py) for every role on every route, not by reading
the declaration, so a document that drifts from the check fails."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from gateway.app import create_gateway_app
from gateway.openapi_integrators import HIDDEN, PUBLIC_PREFIXES
from shared.access import guard
from shared.auth import Caller, Role
from shared.errors import Forbidden, NotFound
from shared.service import create_service_app
from shared.settings import SERVICES, Settings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
HEALTH = {"/healthz", "/readyz"}  # a service's own, left out of the merged document
Operation = tuple[str, str]  # (path, method)


def settings_for(tmp: Path) -> Settings:
    return Settings(
        env="test",
        db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db",
        jwt_secret="test-jwt-secret-of-at-least-32-bytes-long",
        service_secret="test-service-secret-of-at-least-32-bytes",
        password_hash_memory_kib=8192,
    )


async def allowed_roles(route: Any) -> list[str]:
    """The roles the guard lets through to ``route``, in RULES §1's order."""
    params = {name: "x" for name in getattr(route, "param_convertors", {})}
    allowed = []
    for role in Role:
        caller = Caller(sub="probe", role=role, unit_id="u", industry="i", district="120101")

        async def as_caller(request: Request, caller: Caller = caller) -> Caller:
            return caller

        scope = {"type": "http", "route": route, "path_params": params, "headers": []}
        try:
            await guard(as_caller)(Request(scope))
        except (Forbidden, NotFound):
            continue
        allowed.append(role.value)
    return allowed


async def enforced(app: FastAPI) -> dict[Operation, list[str]]:
    """(path, method) of each operation ``app`` documents → the roles the guard allows."""
    found: dict[Operation, list[str]] = {}
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        roles = await allowed_roles(route)
        assert route.path_format is not None
        for method in route.methods or ():
            found[(route.path_format, method.lower())] = roles
    return found


def documented(doc: dict[str, Any]) -> Iterator[tuple[Operation, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield (path, method), operation


def said_roles(description: str) -> list[str] | str:
    """What the description's closing sentence says: the roles, or public/internal."""
    last = description.rsplit("\n\n", 1)[-1]
    if last.startswith(("Public:", "Internal:")):
        return last.split(":")[0].lower()
    assert last.startswith("Roles allowed: "), last
    return re.findall(r"`([a-z]+)`", last.split("(objects:")[0])


def as_gateway_path(service: str, path: str) -> str | None:
    """Where a service's path appears in the merged document (None: it does not)."""
    merged = f"/api/v1/{service}{path}"
    if path in HEALTH or merged.startswith(HIDDEN):
        return None
    for old, new in PUBLIC_PREFIXES.items():
        if merged.startswith(old):
            return new + merged[len(old) :]
    return merged


def service_apps(settings: Settings) -> dict[str, FastAPI]:
    return {
        name: create_service_app(importlib.import_module(f"services.{name}.app").SPEC, settings)
        for name in SERVICES
    }


def check(doc: dict[str, Any], expected: dict[Operation, list[str]]) -> None:
    everyone = [r.value for r in Role]
    roles = {key: op.get("x-roles") for key, op in documented(doc)}
    assert roles == expected
    for key, operation in documented(doc):
        said = said_roles(operation.get("description") or "")
        if operation.get("x-public"):
            assert (said, expected[key]) == ("public", everyone), key
        elif operation.get("x-internal"):
            assert (said, expected[key]) == ("internal", []), key
        else:
            assert said == expected[key], key


@pytest.mark.parametrize("name", SERVICES)
async def test_each_service_documents_the_roles_its_guard_enforces(
    name: str, tmp_path: Path
) -> None:
    app = service_apps(settings_for(tmp_path))[name]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as client:
        doc = (await client.get("/openapi.json")).json()

    expected = await enforced(app)
    assert expected
    check(doc, expected)


async def test_the_merged_document_names_for_every_operation_who_may_call_it(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    services = service_apps(settings)
    gateway = create_gateway_app(
        settings, {n: httpx.ASGITransport(app=a) for n, a in services.items()}
    )
    expected = await enforced(gateway)
    for name, app in services.items():
        for (path, method), roles in (await enforced(app)).items():
            merged = as_gateway_path(name, path)
            if merged is not None:
                expected[(merged, method)] = roles
    async with gateway.router.lifespan_context(gateway):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
        ) as client:
            doc = (await client.get("/openapi.json")).json()

    assert doc["x-unavailable-services"] == []
    check(doc, expected)
    ticket = doc["paths"]["/api/v1/intake/tickets"]["post"]
    assert "operator" in ticket["x-roles"] and "supervisor" not in ticket["x-roles"]
    assert doc["paths"]["/api/v1/auth/login"]["post"]["x-public"] is True
