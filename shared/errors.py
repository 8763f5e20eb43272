"""One error hierarchy, rendered in one place as RFC 9457 problem details."""

from __future__ import annotations

import errno
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


class Unavailable(DomainError):
    """The database (or another dependency) cannot be reached now: the client may retry
    after ``retry_after`` seconds. Nothing was stored."""

    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def is_database_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (a restart, a failover, a full pool), as
    opposed to a bug: the request may be retried. Walks the cause chain, because SQLAlchemy
    wraps the driver's error."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if getattr(seen, "connection_invalidated", False):
            return True
        name = type(seen).__name__
        module = type(seen).__module__
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        if isinstance(seen, OSError) and (
            seen.errno in _NETWORK_ERRNOS or "Connect call failed" in str(seen)
        ):
            return True
        if module.startswith("asyncpg") and name in _ASYNCPG_OUTAGES:
            return True
        if module.startswith("sqlalchemy") and name in ("TimeoutError", "DisconnectionError"):
            return True  # no pooled connection came free in time / the pool gave up
        seen = seen.__cause__ or seen.__context__
    return False


_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)
# asyncpg's errors for a connection that is gone, closing, refused or not yet usable
# (``InternalClientError: cannot switch to state 12`` is a connection broken mid-query).
_ASYNCPG_OUTAGES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "InterfaceError",
        "InternalClientError",
        "AdminShutdownError",
        "CrashShutdownError",
        "ServerShutdownError",
        "TooManyConnectionsError",
        "PostgresConnectionError",
        "ClientCannotConnectError",
        "ConnectionRejectionError",
    }
)


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


def app_exception_handler(app: Any, exc: Exception) -> Any:
    """The handler ``app``'s exception layer would pick for ``exc`` (by its class, nearest
    first), for a plain ASGI layer that answers in the app's place (gateway/proxy.py,
    shared/direct.py); ``Exception``'s own (and a 500's) belong to the server-error layer
    outside, so None: let it go there."""
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        handler = app.exception_handlers.get(kind)
        if handler is not None:
            return handler
    return None


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if isinstance(exc, Unavailable):
            return _unavailable(request, exc)
        response = problem(
            exc.status,
            exc.title,
            exc.detail,
            request,
            rule=exc.rule,
            errors=getattr(exc, "errors", None),
            **exc.extra,
        )
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # 429 and 503 say when to come back
            response.headers["retry-after"] = str(retry_after)
        return response

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
        if is_database_outage(exc):
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return _unavailable(request, Unavailable("the database is unavailable; retry shortly"))
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "an unexpected error occurred", request)

    # the same, registered by class: Starlette re-raises what reaches the ``Exception``
    # handler after answering, so each retryable outage would log a traceback
    for kind in (DBAPIError, SQLAlchemyTimeoutError, OSError):
        app.add_exception_handler(kind, _unexpected)  # type: ignore[arg-type]


def _unavailable(request: Request, exc: Unavailable) -> Response:
    response = problem(exc.status, exc.title, exc.detail, request)
    response.headers["retry-after"] = str(exc.retry_after)
    return response


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
