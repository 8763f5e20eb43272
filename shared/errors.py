"""One error hierarchy, rendered in one place as RFC 9457 problem details."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the exceptions stay importable by pure domain code without FastAPI
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("hotline.errors")


class DomainError(Exception):
    """Base of every refusal the domain makes; ``status`` picks the HTTP code."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, rule: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rule = rule
        self.extra = extra


class NotFound(DomainError):
    status = 404
    title = "Not found"


class IllegalTransition(DomainError):
    """An action the ticket's state (or a rule) does not allow now."""

    status = 409
    title = "Conflict"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class InvalidInput(DomainError):
    """A field the domain refuses after parsing (e.g. unknown matter code)."""

    status = 422
    title = "Validation failed"

    def __init__(self, field: str, reason: str, **extra: Any) -> None:
        # ``errors=[{field, reason}, ...]`` reports several fields at once
        errors = extra.pop("errors", None) or [{"field": field, "reason": reason}]
        super().__init__(f"{field}: {reason}", **extra)
        self.errors = errors


def problem(
    status: int, title: str, detail: str, request: Request | None, **extra: Any
) -> Response:
    from fastapi.responses import Response

    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        trace_id = getattr(request.state, "trace_id", None)
        if trace_id:
            body["trace_id"] = trace_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            request,
            rule=exc.rule,
            errors=getattr(exc, "errors", None),
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "field": "body" if e.get("type") == "json_invalid" else _field_name(e["loc"]),
                "reason": e.get("msg", "invalid"),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem(422, "Validation failed", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "an unexpected error occurred", request)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
