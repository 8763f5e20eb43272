"""One OpenAPI document for the whole platform: the gateway's own paths plus every
service's, as an integrator sees them through the gateway (``/api/v1/<service>/...``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from gateway.openapi_integrators import for_integrators
from gateway.proxy import Upstreams
from shared.access import document_access, public

log = logging.getLogger("hotline.gateway.openapi")

TITLE = "天津 12345 政务服务便民热线 API"
VERSION = "1.0.0"
DESCRIPTION = (
    "The platform behind the Tianjin 12345 government-service hotline. Sign in at "
    "`POST /api/v1/auth/login` and send the token as `Authorization: Bearer <token>`."
)
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
_HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_FETCH_TIMEOUT = 5.0


def _renamed_ref(ref: str, service: str) -> str:
    if not ref.startswith("#/components/"):
        return ref
    _, _, section, name = ref.split("/", 3)
    return f"#/components/{section}/{service}__{name}"


def _rewrite_refs(node: Any, service: str) -> Any:
    """A copy of ``node`` with every local component reference renamed for ``service``
    (``$ref`` values and discriminator mappings)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = _renamed_ref(value, service)
            elif key == "mapping" and isinstance(value, dict):
                out[key] = {
                    k: _renamed_ref(v, service) if isinstance(v, str) else _rewrite_refs(v, service)
                    for k, v in value.items()
                }
            else:
                out[key] = _rewrite_refs(value, service)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, service) for item in node]
    return node


def prefix_service_document(service: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A service's document as seen through the gateway: paths under ``/api/v1/<service>``
    (health checks dropped), components named ``<service>__<Name>``, tags and operation ids
    prefixed so that no two services collide."""
    paths: dict[str, Any] = {}
    for path, item in (doc.get("paths") or {}).items():
        if path in _HEALTH_PATHS:
            continue
        new_item = _rewrite_refs(item, service)
        for method, operation in new_item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            operation["tags"] = [f"{service}/{tag}" for tag in operation.get("tags") or ()] or [
                service
            ]
            if "operationId" in operation:
                operation["operationId"] = f"{service}__{operation['operationId']}"
        paths[f"/api/v1/{service}{path}"] = new_item
    components: dict[str, dict[str, Any]] = {}
    for section, entries in (doc.get("components") or {}).items():
        if section == "securitySchemes" or not isinstance(entries, dict):
            continue  # services trust the gateway's signed headers, not schemes of their own
        components[section] = {
            f"{service}__{name}": _rewrite_refs(entry, service) for name, entry in entries.items()
        }
    tags = [
        {**tag, "name": f"{service}/{tag['name']}"}
        for tag in doc.get("tags") or ()
        if isinstance(tag, dict) and "name" in tag
    ]
    return {"paths": paths, "components": components, "tags": tags}


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details (shared/errors.py)",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string"},
        "rule": {"type": "string", "description": "the article a refusal applies"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "retry_after": {"type": "integer"},
    },
}
# Every operation may answer these, always as problem+json (issue 9).
PROBLEM_STATUSES = {
    "401": "not signed in, or the session has ended",
    "403": "the role or the binding does not allow it",
    "404": "no such object (or not one the caller may know of)",
    "409": "the object's state or a rule does not allow it now",
    "413": "the request body is larger than the gateway's limit",
    "422": "a field is invalid: errors names each field and why",
    "429": "a rate limit: try again after Retry-After seconds",
}


def document_problems(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status, description in PROBLEM_STATUSES.items():
        known = responses.get(status) or {}
        responses[status] = {"description": known.get("description") or description}
        responses[status]["content"] = content
        if status == "429":
            responses[status]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }


def merge_documents(
    gateway_doc: Mapping[str, Any],
    services: Mapping[str, Mapping[str, Any]],
    unavailable: list[str],
) -> dict[str, Any]:
    """``services`` maps names to documents already passed through
    ``prefix_service_document``."""
    paths: dict[str, Any] = dict(gateway_doc.get("paths") or {})
    components: dict[str, dict[str, Any]] = {
        section: dict(entries) for section, entries in (gateway_doc.get("components") or {}).items()
    }
    tags: list[dict[str, Any]] = list(gateway_doc.get("tags") or ())
    for part in services.values():
        paths.update(part["paths"])
        for section, entries in part["components"].items():
            components.setdefault(section, {}).update(entries)
        tags.extend(part["tags"])
    components.setdefault("securitySchemes", {})["bearerAuth"] = BEARER
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for item in paths.values():
        for method, operation in item.items():
            if method in _METHODS and isinstance(operation, dict):
                document_problems(operation)
    merged: dict[str, Any] = {
        "openapi": gateway_doc.get("openapi", "3.1.0"),
        "info": dict(gateway_doc.get("info") or {"title": TITLE, "version": VERSION}),
        "paths": paths,
        "components": components,
        "security": [{"bearerAuth": []}],
        "x-unavailable-services": sorted(unavailable),
    }
    if tags:
        merged["tags"] = tags
    return for_integrators(merged)


class MergedOpenAPI:
    """Builds the merged document on demand. A service's part is fetched through the
    gateway's own clients and kept after the first success; a service that is down is
    left out (and named in ``x-unavailable-services``) until it answers."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._gateway_doc: dict[str, Any] | None = None
        self._parts: dict[str, dict[str, Any]] = {}
        self._complete: bytes | None = None

    def gateway_document(self) -> dict[str, Any]:
        if self._gateway_doc is None:
            self._gateway_doc = document_access(
                get_openapi(
                    title=TITLE, version=VERSION, description=DESCRIPTION, routes=self.app.routes
                ),
                self.app.routes,
            )
        return self._gateway_doc

    async def _fetch(self, service: str, client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/openapi.json", timeout=_FETCH_TIMEOUT)
            response.raise_for_status()
            doc = orjson.loads(response.content)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            log.warning(
                "service openapi unavailable", extra={"service": service, "error": repr(exc)}
            )
            return
        self._parts[service] = prefix_service_document(service, doc)

    async def document(self) -> bytes:
        if self._complete is not None:
            return self._complete
        upstreams: Upstreams = self.app.state.upstreams
        missing = {n: c for n, c in upstreams.clients.items() if n not in self._parts}
        await asyncio.gather(*(self._fetch(n, c) for n, c in missing.items()))
        parts = {n: self._parts[n] for n in upstreams.clients if n in self._parts}
        unavailable = [n for n in upstreams.clients if n not in self._parts]
        body = orjson.dumps(merge_documents(self.gateway_document(), parts, unavailable))
        if not unavailable:
            self._complete = body
        return body


router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
@public()
async def openapi_json(request: Request) -> Response:
    merged: MergedOpenAPI = request.app.state.openapi
    return Response(await merged.document(), media_type="application/json")


@router.get("/docs")
@public()
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=TITLE,
        # served by the platform itself (console/static/vendor): /docs works offline
        swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
    )
