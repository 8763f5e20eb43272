"""The merged OpenAPI document and the docs page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

OPERATIONS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in OPERATIONS:
                yield path, method, operation


async def test_service_paths_appear_under_the_gateway_prefix(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/openapi.json")

    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/intake/tickets",
        "/api/v1/intake/tickets/{ticket_id}/accept",
        "/api/v1/dispatch/tickets",
        "/api/v1/intake/internal/clock",
        "/api/v1/dispatch/echo/{rest}",
    } <= paths
    assert not {p for p in paths if p.endswith(("/healthz", "/readyz")) and "/api/v1/" in p}
    assert "/tickets" not in paths
    assert not any("{service}" in p for p in paths)


async def test_schemas_are_renamed_per_service_and_every_ref_resolves(
    gateway: httpx.AsyncClient,
) -> None:
    doc = (await gateway.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    assert {"intake__TicketPublic", "dispatch__TicketPublic", "intake__Requester"} <= set(schemas)
    assert "TicketPublic" not in schemas
    refs = list(refs_in(doc))
    assert "#/components/schemas/intake__TicketCreate" in refs
    assert "#/components/schemas/dispatch__Requester" in refs
    for ref in refs:
        resolve(doc, ref)
    ticket = doc["paths"]["/api/v1/dispatch/tickets"]["post"]
    body_ref = ticket["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/dispatch__TicketCreate"
    requester = resolve(doc, body_ref)["properties"]["requester"]["$ref"]
    assert requester == "#/components/schemas/dispatch__Requester"


async def test_tags_and_operation_ids_are_prefixed_so_services_never_collide(
    gateway: httpx.AsyncClient,
) -> None:
    doc = (await gateway.get("/openapi.json")).json()

    op_ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(op_ids) == len(set(op_ids))
    tickets = doc["paths"]["/api/v1/intake/tickets"]["post"]
    assert tickets["tags"] == ["intake/tickets"]
    assert tickets["operationId"] == "registerTicket"
    assert doc["paths"]["/api/v1/dispatch/internal/clock"]["get"]["tags"] == ["dispatch/internal"]


async def test_bearer_auth_applies_to_everything_but_sign_in_and_health(
    gateway: httpx.AsyncClient,
) -> None:
    doc = (await gateway.get("/openapi.json")).json()

    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert doc["paths"]["/readyz"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/api/v1/auth/me"]["get"]
    assert "security" not in doc["paths"]["/api/v1/intake/tickets"]["post"]
    assert doc["x-unavailable-services"] == []


async def test_a_service_that_is_down_is_skipped_listed_and_fetched_once_it_is_up(
    gateway_with: Callable[..., Any],
    stand_in: Callable[..., Any],
    counting_transport: Any,
) -> None:
    intake = counting_transport(stand_in("intake"))
    sla = counting_transport(stand_in("sla"), fail_first=1)
    async with gateway_with({"intake": intake, "sla": sla}) as client:
        first = (await client.get("/openapi.json")).json()
        second = (await client.get("/openapi.json")).json()
        third = (await client.get("/openapi.json")).json()

    assert first["x-unavailable-services"] == ["sla"]
    assert "/api/v1/intake/tickets" in first["paths"]
    assert not any(p.startswith("/api/v1/sla/") for p in first["paths"])
    assert second["x-unavailable-services"] == []
    assert "/api/v1/sla/tickets" in second["paths"]
    assert third == second
    assert intake.paths.count("/openapi.json") == 1  # cached after the first success
    assert sla.paths.count("/openapi.json") == 2


async def test_docs_serve_swagger_ui_for_the_merged_document(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
