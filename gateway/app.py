"""The gateway: the one front door of the platform. It signs users in, forwards each request
to its service with the caller's identity signed, and serves one merged OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import Depends, FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from console import console_lifespan, mount_console
from gateway import admin, auth, openapi, tickets, timeline
from gateway.channels import install_channels
from gateway.clock import clock_router
from gateway.hygiene import RequestHygiene
from gateway.identities import SessionGuard, open_identities
from gateway.openapi import MergedOpenAPI
from gateway.proxy import ProxyContext, Upstreams, install_proxy, proxy, service_path_params
from gateway.throttle import Throttle
from shared.access import guard, public
from shared.bus import Bus
from shared.clock import Clock
from shared.errors import NotFound, install_error_handlers
from shared.http_server import NO_FASTAPI_TELEMETRY, freeze_startup_heap
from shared.metrics import Metrics, RequestEdge, bearer_matches
from shared.settings import Settings

READY_TIMEOUT = 3.0
_PUBLIC: dict[str, Any] = {"security": []}  # no token needed


async def _service_readiness(client: httpx.AsyncClient) -> tuple[bool, dict[str, Any]]:
    try:
        response = await client.get("/readyz", timeout=READY_TIMEOUT)
    except httpx.HTTPError as exc:
        return False, {"status": "unreachable", "error": type(exc).__name__}
    try:
        detail = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        detail = {"status": "not_ready", "body": response.text[:200]}
    if not isinstance(detail, dict):
        detail = {"body": detail}
    return response.status_code == 200, {"http_status": response.status_code, **detail}


class Gateway(FastAPI):
    """The gateway's app. A request for a service's path (``/api/v1/<service>/...``: every
    ticket's) goes from the server straight to ``services``, the same edge and hygiene
    layers as every request's (trace id, metrics, limits) before the proxy: past FastAPI's
    and starlette's own layers (server errors, whose 500 the proxy answers itself; telemetry
    and a body limit, both off here) and the router, ~3 µs of the gateway's CPU a request.
    Anything else goes through the whole app."""

    services: ASGIApp | None = None
    # what the proxy reads on every request (made at start), a plain attribute: one of
    # ``state``'s is a Python-level lookup (~0.4 µs)
    proxy_context: ProxyContext | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.services is not None
            and scope["type"] == "http"
            and not self.root_path
            and (params := service_path_params(scope)) is not None
        ):
            scope["app"] = self
            # what the route's match gives: the metrics' route template reads them
            scope["endpoint"] = proxy
            scope["path_params"] = params
            await self.services(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_gateway_app(
    settings: Settings,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The gateway app. ``transports`` (embedded mode and tests) maps service names to
    in-process transports; without it each service is reached at its configured URL.
    ``bus`` (embedded mode) is the services' bus, for the console's live board; ``clock``
    (embedded mode) the services' shared clock, served at ``/api/v1/clock``."""

    @asynccontextmanager
    async def lifespan(app: Gateway) -> AsyncIterator[None]:
        upstreams = Upstreams(settings, transports)
        app.state.upstreams = upstreams
        identities = await open_identities(settings)
        app.state.identities = identities
        app.state.sessions = SessionGuard(identities, settings.session_check_seconds)
        app.proxy_context = ProxyContext.of(app.state)
        try:
            async with console_lifespan(console):
                if freeze_heap:  # the process serves this app alone (see create_service_app)
                    freeze_startup_heap()
                yield
        finally:
            await upstreams.aclose()
            await identities.db.dispose()

    app = Gateway(
        title=openapi.TITLE,
        version=openapi.VERSION,
        lifespan=lifespan,
        telemetry=NO_FASTAPI_TELEMETRY,
        openapi_url=None,  # gateway/openapi.py serves the merged document instead
        docs_url=None,
        redoc_url=None,
        # the gateway's own routes' declared access (shared/access.py)
        dependencies=[Depends(guard(auth.get_caller))],
    )
    settings.check_gateway_production()  # no dev JWT key, no demo users in production
    app.state.settings = settings
    app.state.throttle = Throttle(settings)
    app.state.tokens = auth.TokenVerifier(settings.jwt_secret)
    app.state.openapi = MergedOpenAPI(app)
    install_error_handlers(app)
    limits = {"max_body": settings.max_body_bytes, "max_upload": settings.max_upload_bytes}
    app.add_middleware(RequestHygiene, **limits)
    metrics = app.state.metrics = Metrics()
    app.add_middleware(RequestEdge, metrics=metrics)  # trace id and metrics, outside
    app.services = RequestEdge(RequestHygiene(proxy, **limits), metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    @public()  # its own bearer token (HOTLINE_METRICS_TOKEN)
    async def prometheus(request: Request) -> Response:
        """Prometheus text format, for a bearer token equal to HOTLINE_METRICS_TOKEN only:
        this port is public (without a token set, there is no such page)."""
        if not bearer_matches(request.headers.get("authorization"), settings.metrics_token):
            raise NotFound("no such resource")
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["health"], openapi_extra=_PUBLIC)
    @public()
    async def healthz() -> dict[str, str]:
        """The gateway process is alive."""
        return {"status": "ok", "service": "gateway"}

    @app.get("/readyz", tags=["health"], openapi_extra=_PUBLIC)
    @public()
    async def readyz(request: Request) -> Response:
        """Ready when every service says it is ready (503 otherwise, with each one's answer)."""
        clients = request.app.state.upstreams.clients
        answers = await asyncio.gather(*(_service_readiness(c) for c in clients.values()))
        ready = all(ok for ok, _ in answers)
        body = {
            "status": "ready" if ready else "not_ready",
            "services": {name: detail for name, (_, detail) in zip(clients, answers, strict=True)},
        }
        return Response(
            orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
        )

    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(openapi.router)
    app.include_router(timeline.router)  # before the proxy's catch-all route
    app.include_router(tickets.router)
    if clock is not None:
        app.state.clock = clock
        app.include_router(clock_router(clock))
    install_channels(app, settings.api_key_cache_seconds)  # API keys, WeChat pass-through
    install_proxy(app)
    console = mount_console(app, settings, bus)  # last: the pages take what no API route takes
    return app
