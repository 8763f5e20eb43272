"""The merged OpenAPI document as integrators generate clients from it: readable, stable
operation ids, every error documented as problem+json, an example on every request body,
and problems that name the gateway path the client called."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from gateway.openapi_integrators import example_of
from tests.unit.gateway.test_gateway_openapi import operations, resolve

READABLE = re.compile(r"^[a-z][A-Za-z0-9]*$")


async def test_operation_ids_are_readable_unique_and_named_for_what_they_do(
    gateway: httpx.AsyncClient,
) -> None:
    doc = (await gateway.get("/openapi.json")).json()
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert all(READABLE.match(i) for i in ids), [i for i in ids if not READABLE.match(i)]
    assert len(ids) == len(set(ids))
    assert doc["paths"]["/api/v1/intake/tickets"]["post"]["operationId"] == "registerTicket"
    assert doc["paths"]["/api/v1/auth/login"]["post"]["operationId"] == "login"
    assert (
        doc["paths"]["/api/v1/dispatch/tickets/{ticket_id}/accept"]["post"]["operationId"]
        == "acceptTicket"
    )


async def test_every_error_is_documented_as_problem_json(gateway: httpx.AsyncClient) -> None:
    doc = (await gateway.get("/openapi.json")).json()
    assert resolve(doc, "#/components/schemas/Problem")["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    for path, method, op in operations(doc):
        for status in ("403", "404", "409", "422", "502", "503"):
            content = op["responses"][status]["content"]
            assert content == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (path, method, status)


async def test_every_request_body_has_an_example(gateway: httpx.AsyncClient) -> None:
    doc = (await gateway.get("/openapi.json")).json()
    bodies = [
        (path, media)
        for path, _, op in operations(doc)
        for media in (op.get("requestBody") or {}).get("content", {}).values()
    ]
    assert bodies
    for path, media in bodies:
        assert "example" in media or "examples" in media, path
    login = doc["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(login["application/json"]["example"]) == {"username", "password"}


def test_an_example_follows_the_schema() -> None:
    doc: dict[str, Any] = {
        "components": {"schemas": {"Kind": {"enum": ["help", "complaint"]}}},
    }
    schema = {
        "type": "object",
        "required": ["kind", "count", "tags", "at"],
        "properties": {
            "kind": {"$ref": "#/components/schemas/Kind"},
            "count": {"type": "integer", "minimum": 3},
            "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "at": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]},
            "optional": {"type": "string"},
        },
    }
    assert example_of(doc, schema) == {
        "kind": "help",
        "count": 3,
        "tags": ["示例"],
        "at": "2026-03-02T09:00:00+08:00",
    }


async def test_a_services_problem_names_the_gateway_path(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    r = await gateway.post("/api/v1/dispatch/tickets/T1/accept", headers=await login_as("op1"))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["instance"] == "/api/v1/dispatch/tickets/T1/accept"
    assert r.json()["rule"] == "Art 11"
