"""Routes served past FastAPI's router (issue 12): ``@direct`` on a route's function.

A service's busiest route (intake's ``POST /tickets``: every ticket) spent as much CPU in
FastAPI's request machinery as in its own work: the router matched it through the app's
routes and included routers twice over, ``request_response`` built two exit stacks,
``solve_dependencies`` walked its dependencies and query, header and cookie parameters, the
body went through ``json.loads`` and then pydantic, and the answer was validated again
against the response model. ``DirectRoutes``, a plain ASGI layer of every service (inside
``VerifyCaller``, so the caller is verified and the body read once), serves a marked route
itself when the request is the common one:

- a JSON body (``content-type: application/json``) that its model validates straight from
  the bytes (``model_validate_json``);
- then the route's dependencies, in FastAPI's order, each called with the request (the
  access guard of shared/access.py first), and the route's function;
- the answer as FastAPI gives it (the route's status, ``application/json``, the response
  model's JSON; a ``Response`` the route returns, as is); an exception goes to the app's
  own handlers (shared/errors.py), as from any route.

Whatever else arrives (another content type, a body that does not validate, an app with
dependency overrides) goes on to FastAPI's route unchanged, which answers it as ever (the
422 of a bad body, in FastAPI's order of checks). The route stays where it was: OpenAPI, the
access matrix and every other path see it as before. A marked route that this layer could
not serve as FastAPI would (parameters other than one body model and dependencies that
take only the request) is refused when the app is built; its path is its own (no route
FastAPI tries before it matches the path too).

``ServiceApp``, every service's app, sends each HTTP request from the server straight to the
layers the service added (the edge, the caller's check, ``DirectRoutes``; then FastAPI's
exception layer and router) in a server-error layer of its own, made as the app's: past
FastAPI's and starlette's ``__call__`` (the telemetry question asked of every request) and
FastAPI's exception-telemetry and body-limit layers, each a coroutine a request that does
nothing when telemetry is off and no body limit is set, as services are made
(shared/service.py). With either on, every request goes FastAPI's whole way."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.asgi import read_body, replaying
from shared.errors import app_exception_handler

try:  # FastAPI's own layers, which ServiceApp passes (private: a FastAPI without them
    # serves every request its whole way)
    from fastapi._body_limit import AppBodyLimitMiddleware
    from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
except ImportError:  # pragma: no cover - another FastAPI
    AppBodyLimitMiddleware = ExceptionTelemetryMiddleware = None  # type: ignore[assignment,misc]

DIRECT_ATTRIBUTE = "__hotline_direct__"
F = TypeVar("F", bound=Callable[..., Any])
_JSON = b"application/json"


def direct(endpoint: F) -> F:
    """Serve this route through ``DirectRoutes`` (see the module's docstring)."""
    setattr(endpoint, DIRECT_ATTRIBUTE, True)
    return endpoint


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """What serving one marked route takes, read once from its FastAPI route."""

    route: APIRoute
    endpoint: Callable[..., Awaitable[Any]]
    # (name the function receives it by, or None; the dependency), in FastAPI's order
    dependencies: tuple[tuple[str | None, Callable[[Request], Awaitable[Any]]], ...]
    body_name: str
    body_model: type[BaseModel]
    status: int
    response_model: type[BaseModel]
    response: TypeAdapter[Any]

    @classmethod
    def of(cls, context: Any) -> DirectRoute:
        """``context``: the route as FastAPI serves it (``iter_route_contexts``)."""
        route, dependant = context.original_route, context.dependant
        where = f"@direct route {context.path_format}"
        body = dependant.body_params
        if (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or len(body) != 1
            or context._embed_body_fields
            or not _model(body[0].field_info.annotation)
            or dependant.request_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or dependant.http_connection_param_name
        ):
            raise TypeError(f"{where}: only one body model and dependencies are served")
        dependencies = []
        for sub in dependant.dependencies:
            takes_only_the_request = not (
                sub.dependencies
                or sub.path_params
                or sub.query_params
                or sub.header_params
                or sub.cookie_params
                or sub.body_params
                or sub.response_param_name
                or sub.background_tasks_param_name
                or sub.security_scopes_param_name
                or sub.http_connection_param_name
            )
            if not (takes_only_the_request and sub.request_param_name and _coroutine(sub.call)):
                raise TypeError(f"{where}: a dependency takes more than the request")
            dependencies.append((sub.name, _by_request(sub.call, sub.request_param_name)))
        model = context.response_model
        if (
            not _model(model)
            or context.response_model_include is not None
            or context.response_model_exclude is not None
            or not context.response_model_by_alias
            or context.response_model_exclude_unset
            or context.response_model_exclude_defaults
            or context.response_model_exclude_none
            or context.max_body_size is not None
            or not _coroutine(context.endpoint)
        ):
            raise TypeError(f"{where}: its answer is not one response model, served as is")
        return cls(
            route=route,
            endpoint=context.endpoint,
            dependencies=tuple(dependencies),
            body_name=body[0].name,
            body_model=body[0].field_info.annotation,
            status=context.status_code or 200,
            response_model=model,
            response=TypeAdapter(model),
        )

    async def serve(
        self, app: FastAPI, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer the request; False (nothing sent) when it is one for FastAPI's route."""
        try:
            data = self.body_model.model_validate_json(body)
        except ValidationError:
            return False  # FastAPI's route says what is wrong with it, as always
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            values: dict[str, Any] = {}
            for name, dependency in self.dependencies:
                value = await dependency(request)
                if name is not None:
                    values[name] = value
            values[self.body_name] = data
            answer = await self.endpoint(**values)
            if isinstance(answer, Response):
                written = answer  # a response of the route's own: sent as is, as FastAPI does
            else:
                if type(answer) is not self.response_model:  # FastAPI's check of the answer
                    answer = self.response.validate_python(answer, from_attributes=True)
                # what self.response.dump_json calls, without its keyword arguments' cost
                content = self.response.serializer.to_json(answer, by_alias=True)
                written = None
        except Exception as exc:
            handler = app_exception_handler(app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            await response(scope, receive, send)
            return True
        if written is not None:
            await written(scope, receive, send)
            return True
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-length", str(len(content)).encode("latin-1")),
                    (b"content-type", _JSON),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        return True


class DirectRoutes:
    """Plain ASGI: ``@direct`` routes served here, anything else passed on unchanged."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self.routes = direct_routes(fastapi.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"]))
            if scope["type"] == "http" and self.routes
            else None
        )
        if (
            route is None
            or scope.get("root_path")
            or self.fastapi.dependency_overrides
            or _content_type(scope["headers"]) != _JSON
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body and await route.serve(self.fastapi, scope, body, replaying(body, receive), send):
            return
        await self.app(scope, replaying(body, receive), send)


class ServiceApp(FastAPI):
    """A service's app: an HTTP request past FastAPI's and starlette's outer layers (see the
    module's docstring). Anything else (lifespan, a websocket, an app under a root path, one
    with telemetry or a body limit) goes FastAPI's whole way."""

    # the server-error layer around the service's own layers, made at the first call;
    # False: this app's requests go FastAPI's whole way
    _edge: ASGIApp | bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self._edge
        if edge is None:
            edge = self._edge = self._own_layers()
        if edge is not False and scope["type"] == "http" and not self.root_path:
            scope["app"] = self  # as starlette's __call__
            await edge(scope, receive, send)  # type: ignore[operator]
            return
        await super().__call__(scope, receive, send)

    def _own_layers(self) -> ASGIApp | bool:
        """``ServerErrorMiddleware`` (the app's 500 handler, the app's debug) around what
        FastAPI's stack holds inside its exception-telemetry and body-limit layers; False
        when those layers would do something here, or are not where FastAPI puts them."""
        telemetry = getattr(self, "_telemetry", None)
        if (
            AppBodyLimitMiddleware is None
            or ExceptionTelemetryMiddleware is None
            or not isinstance(telemetry, dict)
            or telemetry.get("tracing", True)
            or telemetry.get("metrics", True)
            or telemetry.get("logs", True)
            or self.max_body_size is not None
        ):
            return False
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        errors = self.middleware_stack
        exceptions = getattr(errors, "app", None)
        limits = getattr(exceptions, "app", None)
        if not (
            isinstance(errors, ServerErrorMiddleware)
            and type(exceptions) is ExceptionTelemetryMiddleware
            and type(limits) is AppBodyLimitMiddleware
        ):
            return False
        return ServerErrorMiddleware(limits.app, handler=errors.handler, debug=errors.debug)


def direct_routes(routes: Iterable[Any]) -> dict[tuple[str, str], DirectRoute]:
    """The app's ``@direct`` routes by (method, path)."""
    found: dict[tuple[str, str], DirectRoute] = {}
    for context in iter_route_contexts(list(routes)):
        endpoint = context.endpoint
        if not getattr(endpoint, DIRECT_ATTRIBUTE, False):
            continue
        path = context.path_format
        if not isinstance(context.original_route, APIRoute) or not path or "{" in path:
            raise TypeError(f"@direct route {path}: a fixed path is served")
        served = DirectRoute.of(context)
        for method in context.methods or ():
            found[(method, path)] = served
    return found


def _model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _coroutine(call: Any) -> bool:
    return inspect.iscoroutinefunction(call)


def _by_request(
    call: Callable[..., Awaitable[Any]], name: str
) -> Callable[[Request], Awaitable[Any]]:
    return lambda request: call(**{name: request})


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for key, value in headers:
        if key == b"content-type":
            return value.lower()
    return None
