"""Embedded mode (``make run``): every service and the gateway in one process, on one port,
sharing one bus (a durable log in a SQLite file, Kafka's semantics) and one clock. The
services are reached in-process through ``httpx.ASGITransport``, so the URLs are the
gateway's (``/api/v1/<service>/...``)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import FrameType
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.app import create_gateway_app
from gateway.users import demo_logins
from shared.bus import LogBus
from shared.clock import make_clock
from shared.db import service_url
from shared.http_server import Server, freeze_startup_heap, server_options
from shared.service import ServiceSpec, create_service_app
from shared.settings import SERVICES, Settings

log = logging.getLogger("hotline.embedded")


def load_specs() -> dict[str, ServiceSpec]:
    """Each service's ``SPEC`` from ``services.<name>.app``, imported only when asked for."""
    return {name: importlib.import_module(f"services.{name}.app").SPEC for name in SERVICES}


@asynccontextmanager
async def embedded_app(
    settings: Settings, *, specs: Mapping[str, ServiceSpec] | None = None
) -> AsyncIterator[FastAPI]:
    """The gateway app with every service started behind it (lifespans entered), ready to
    be driven through ``httpx.ASGITransport`` or served. ``specs`` replaces the real
    services (tests)."""
    specs = load_specs() if specs is None else specs
    bus = embedded_bus(settings)
    clock = make_clock(settings.clock, settings.clock_offset_seconds)
    async with AsyncExitStack() as stack:
        # a service's consumer starts as it subscribes and reads the log from its own
        # position, so the order the services start in does not matter
        await bus.start()
        stack.push_async_callback(bus.stop)  # runs last: after every relay has stopped
        service_apps: dict[str, FastAPI] = {}
        for name, spec in specs.items():
            app = create_service_app(spec, settings, bus=bus, clock=clock, clock_routes=False)
            # ASGITransport runs no lifespan: start each service here.
            await stack.enter_async_context(app.router.lifespan_context(app))
            service_apps[name] = app
        transports: dict[str, httpx.AsyncBaseTransport] = {
            # a service's own 500 answer passes through; its exception stays with it
            name: httpx.ASGITransport(app=app, raise_app_exceptions=False)
            for name, app in service_apps.items()
        }
        for app in service_apps.values():  # a service calling another (channels → intake)
            app.state.ctx.extras["transports"] = transports
        gateway = create_gateway_app(settings, transports=transports, bus=bus, clock=clock)
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        gateway.state.bus = bus
        gateway.state.services = service_apps
        yield gateway


async def settle(app: FastAPI, timeout: float = 30.0) -> None:
    """Wait until the embedded system is quiet: every outbox sent and every consumer
    group caught up with the log (tests and benchmarks, instead of sleeping)."""
    bus: LogBus = app.state.bus
    relays = [service.state.ctx.relay for service in app.state.services.values()]
    await bus.settle(*relays, timeout=timeout)


def embedded_bus(settings: Settings) -> LogBus:
    """The durable log: ``HOTLINE_BUS_LOG_PATH``, else beside the SQLite files
    (``var/hotline-bus.db``); in memory when the databases are."""
    path = settings.bus_log_path
    if not path and settings.db_url.startswith("sqlite"):
        url = service_url(settings.db_url, "bus")
        _, _, file = url.partition(":///")
        path = "" if not file or file.startswith(":memory:") else file
    return LogBus(path or None, batch_size=settings.consumer_batch_size)


def _public_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port_for('gateway')}"


def banner(settings: Settings) -> str:
    url = _public_url(settings)
    lines = [
        "12345 hotline platform (embedded mode: all services in this process)",
        f"  Console:   {url}/",
        f"  API docs:  {url}/docs",
        "  Demo logins:",
        f"    {'username':<22}{'password':<12}{'role':<12}unit",
    ]
    for login in demo_logins():
        lines.append(
            f"    {login.username:<22}{login.password:<12}{login.role.value:<12}"
            f"{login.unit_id or '-'}"
        )
    return "\n".join(lines)


@contextmanager
def _graceful_signals() -> Iterator[None]:
    """uvicorn shuts down on SIGINT/SIGTERM and then raises the same signal again; absorb
    that one, so the services still stop in order. A further signal acts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {
        sig: signal.getsignal(sig) or signal.SIG_DFL for sig in (signal.SIGINT, signal.SIGTERM)
    }

    def absorb(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, previous[signum])

    for sig in previous:
        signal.signal(sig, absorb)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _announce(server: uvicorn.Server, settings: Settings) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    print(banner(settings), flush=True)


async def serve(settings: Settings) -> None:
    """Start everything, serve on ``settings.host``/gateway port until stopped."""
    # the address first, before the start-up log lines; the full banner follows when ready
    print(f"12345 hotline platform starting: console at {_public_url(settings)}/", flush=True)
    async with embedded_app(settings) as app:
        freeze_startup_heap()  # every app has started
        config = uvicorn.Config(
            app,
            **server_options(
                host=settings.host,
                port=settings.port_for("gateway"),
                loop="auto",  # the running loop
                lifespan="off",  # embedded_app has started everything already
                timeout_graceful_shutdown=5,  # an open live board (SSE) never ends by itself
            ),
        )
        server = Server(config)
        announce = asyncio.create_task(_announce(server, settings))
        try:
            with _graceful_signals():
                await server.serve()
        finally:
            announce.cancel()
    log.info("all services stopped")


def main() -> None:
    from shared.logging import configure_logging
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging("hotline", settings.log_level, settings.log_json)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(settings))
    except KeyboardInterrupt:
        sys.exit(130)
