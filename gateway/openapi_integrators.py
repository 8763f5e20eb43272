"""The merged OpenAPI document made fit for generating clients: readable, stable operation
ids (``registerTicket``) derived from each route's function name, every error status
documented as RFC 9457 problem+json, an example on every request body, and the public
adapter paths (WeChat, Open311) where the gateway actually serves them."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

METHODS = frozenset({"get", "put", "post", "delete", "patch"})
PROBLEM = "#/components/schemas/Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `instance` is the gateway path of the request.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Validation failed"},
        "status": {"type": "integer", "example": 422},
        "detail": {"type": "string", "example": "district: unknown district code"},
        "instance": {"type": "string", "example": "/api/v1/intake/tickets"},
        "trace_id": {"type": "string"},
        "rule": {"type": "string", "description": "the article a refusal rests on"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}
ERROR_TEXT = {
    "401": "not signed in (bearer token or API key missing, expired or revoked)",
    "403": "the caller's role or unit may not do this",
    "404": "no such resource (or not the caller's)",
    "409": "the state or a rule does not allow it now (`rule` names the article)",
    "422": "a field is refused (`errors`: field and reason)",
    "502": "a service behind the gateway closed the connection without answering: the "
    "request may or may not have taken effect (repeat it with the same Idempotency-Key "
    "where the operation takes one, or check first); `Retry-After` says when",
    "503": "a service behind the gateway is unavailable and nothing was done; `Retry-After` "
    "says when to try again",
}
# where a route's function name alone does not say what it does
OVERRIDES = {
    ("intake", "register"): "registerTicket",
    ("intake", "lookup"): "lookupTicket",
    ("intake", "rate_call"): "rateCall",
    ("knowledge", "suggest"): "suggestEntries",
    ("knowledge", "reindex"): "reindexEntries",
    ("sla", "board"): "overdueBoard",
    ("dispatch", "dispatch"): "dispatchTicket",
    ("dispatch", "refer"): "referTicket",
    ("dispatch", "determine"): "determineTicket",
    ("dispatch", "accept"): "acceptTicket",
    ("dispatch", "complete"): "completeTicket",
    ("dispatch", "inbox"): "unitInbox",
}
# the adapters the gateway serves outside /api/v1 (no token: their own authentication)
PUBLIC_PREFIXES = {
    "/api/v1/channels/open311/v2/": "/open311/v2/",
    "/api/v1/channels/wechat/": "/wechat/",
}
HIDDEN = ("/api/v1/channels/internal/api-keys/",)


def _camel(name: str) -> str:
    head, *rest = [p for p in re.split(r"[_\W]+", name) if p]
    return head.lower() + "".join(p[:1].upper() + p[1:] for p in rest)


def _function_name(operation_id: str, service_path: str, method: str) -> str:
    """FastAPI's id is ``<function><path with non-word characters as _>_<method>``."""
    suffix = re.sub(r"\W", "_", service_path) + "_" + method
    return operation_id[: -len(suffix)] if operation_id.endswith(suffix) else operation_id


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        schema = node
    return schema


def example_of(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A value the schema accepts, from its own examples and defaults where it has them."""
    schema = _resolve(doc, schema)
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("example", "const"):
        if key in schema:
            return schema[key]
    if schema.get("default") not in (None, [], {}):
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, ()) if _resolve(doc, o).get("type") != "null"]
        if options:
            return example_of(doc, options[0], depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        required = set(schema.get("required", ()))
        return {
            name: example_of(doc, sub, depth + 1)
            for name, sub in schema.get("properties", {}).items()
            if name in required
        }
    if kind == "array":
        return (
            [example_of(doc, schema.get("items", {}), depth + 1)] if schema.get("minItems") else []
        )
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2026-03-02T09:00:00+08:00"
    return "示例"


TICKET_EXAMPLE = {
    "type": "help",
    "matter_code": "WATER-001",
    "district": "120103",
    "address": "河西区友谊路街道某小区3号楼",
    "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
    "requester": {"name": "刘芳", "phone": "13920001234"},
}
EXAMPLES = {"registerTicket": TICKET_EXAMPLE}


def for_integrators(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the merged document) rewritten in place and returned."""
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        if path.startswith(HIDDEN):
            continue
        for old, new in PUBLIC_PREFIXES.items():
            if path.startswith(old):
                path = new + path[len(old) :]
                for operation in item.values():
                    if isinstance(operation, dict):
                        operation["security"] = []
        paths[path] = item
    doc["paths"] = paths
    found: list[tuple[str, str, str, dict[str, Any]]] = []
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in METHODS or not isinstance(operation, dict):
                continue
            operation_id = operation.get("operationId") or ""
            service, _, local = operation_id.partition("__")
            if not (service and path.startswith((f"/api/v1/{service}/", "/open311/", "/wechat/"))):
                service, local = "", operation_id  # one of the gateway's own
            service_path = re.sub(r"^/api/v1/[^/]+", "", path) if service else path
            if path.startswith(tuple(PUBLIC_PREFIXES.values())):
                service_path = path
            found.append((service, _function_name(local, service_path, method), method, operation))
    counts = Counter(fn for _, fn, _, _ in found)
    taken: set[str] = set()
    for service, fn, method, operation in found:
        name = OVERRIDES.get((service, fn)) or _camel(
            fn if counts[fn] == 1 or not service else f"{service}_{fn}"
        )
        while name in taken:  # the same function on two methods of one path
            name += method.capitalize()
        taken.add(name)
        operation["operationId"] = name
        _document_errors(operation)
        _example_body(doc, operation)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for key, schema in schemas.items():
        # client generators name classes by title: two services' ``TicketPublic`` differ
        if "__" in key and isinstance(schema, dict):
            schema["title"] = "".join(p[:1].upper() + p[1:] for p in key.split("__"))
    schemas["Problem"] = PROBLEM_SCHEMA
    return doc


def _document_errors(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    wanted = ["401", "403", "404", "409", "422", "502", "503"]
    if operation.get("security") == []:
        wanted.remove("401")
    for status in wanted:
        responses[status] = {
            "description": ERROR_TEXT[status],
            "content": {"application/problem+json": {"schema": {"$ref": PROBLEM}}},
        }


def _example_body(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    body = operation.get("requestBody")
    if not isinstance(body, dict):
        return
    for media in body.get("content", {}).values():
        if "example" in media or "examples" in media:
            continue
        media["example"] = EXAMPLES.get(operation["operationId"]) or example_of(
            doc, media.get("schema", {})
        )
