"""How every process serves HTTP (shared/http_server.py): the same uvicorn settings, FastAPI's
own instrumentation off, and one edge layer for trace ids and metrics (shared/metrics.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.http_server import server_options


@pytest.mark.parametrize("name", ["loop", "http", "access_log", "timeout_keep_alive"])
def test_every_process_serves_with_the_same_settings(name: str) -> None:
    expected = {
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "timeout_keep_alive": 75,
    }
    assert server_options()[name] == expected[name]


def service_app() -> Any:
    from shared.service import ServiceSpec, create_service_app
    from shared.settings import Settings

    return create_service_app(
        ServiceSpec(name="intake", title="intake", migrations=Path("."), routers=[]), Settings()
    )


def gateway_app() -> Any:
    from gateway.app import create_gateway_app
    from shared.settings import Settings

    return create_gateway_app(Settings())


@pytest.mark.parametrize("make_app", [service_app, gateway_app])
async def test_fastapi_asks_opentelemetry_nothing_per_request(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform's metrics and trace ids are its own; FastAPI's instrumentation would ask
    OpenTelemetry's global providers on every request whether one is configured."""
    from opentelemetry import metrics, trace

    asked: list[str] = []
    for module, getter in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider")):
        real = getattr(module, getter)
        monkeypatch.setattr(module, getter, lambda real=real, g=getter: asked.append(g) or real())
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        for _ in range(3):
            assert (await c.get("/healthz")).status_code == 200

    assert asked == []


async def test_the_edge_looks_each_series_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """hotline_http_request_duration_seconds by method, route and status: prometheus_client's
    labels() builds its key under a lock; the edge keeps the series it found."""
    app = service_app()
    histogram = app.state.metrics.http
    looked_up: list[tuple[str, ...]] = []
    labels = histogram.labels
    monkeypatch.setattr(histogram, "labels", lambda *v: looked_up.append(v) or labels(*v))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        for _ in range(3):
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/nowhere")).status_code == 404

    assert looked_up == [("GET", "/healthz", "200"), ("GET", "unmatched", "404")]
    body, _ = app.state.metrics.exposition()
    assert b'_count{method="GET",route="/healthz",status="200"} 3.0' in body
    assert b'_count{method="GET",route="unmatched",status="404"} 3.0' in body


@pytest.mark.parametrize("make_app", [service_app, gateway_app])
async def test_the_edge_keeps_the_clients_request_id_or_makes_one(make_app: Any) -> None:
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        kept = await c.get("/healthz", headers={"x-request-id": "req-7"})
        made = await c.get("/healthz", headers={"x-request-id": "bad\x7fid"})

    assert kept.headers["x-request-id"] == "req-7"
    assert made.headers["x-request-id"] != "bad\x7fid"
    assert len(made.headers["x-request-id"]) == 32


def test_a_service_takes_no_forwarded_client_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the gateway calls a service and no service reads the client address, so a
    service's server has no proxy-headers layer (the gateway, facing clients, keeps it)."""
    import shared.logging
    import shared.service
    from shared.service import ServiceSpec, run_service

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(shared.logging, "configure_logging", lambda *args: None)
    monkeypatch.setattr(shared.service, "serve", lambda app, **options: served.append(options))
    run_service(ServiceSpec(name="intake", title="intake", migrations=Path("."), routers=[]))

    assert served[0]["proxy_headers"] is False


async def test_an_idle_server_wakes_once_a_second_and_stops_as_soon_as_it_is_told() -> None:
    """uvicorn's main loop woke ten times a second to refresh the date header (one-second
    resolution) and to look whether to stop: most of an idle process's CPU after its polls."""
    import asyncio
    import socket
    import time

    import uvicorn

    from shared.http_server import Server

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(uvicorn.Config(app, **server_options(lifespan="off", loop="asyncio")))
    ticks: list[int] = []
    tick = server.on_tick

    async def counted_tick(counter: int) -> bool:
        ticks.append(counter)
        return await tick(counter)

    server.on_tick = counted_tick  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    assert len(ticks) <= 2  # one at the start, then one a second (uvicorn: five by now)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    async with httpx.AsyncClient() as client:
        assert "date" in (await client.get(url)).headers
    told = time.monotonic()
    server.should_exit = True
    await asyncio.wait_for(serving, 5)
    assert time.monotonic() - told < 0.5


def started_service(tmp: Path, freeze_heap: bool = True) -> Any:
    from services.intake.app import SPEC
    from shared.bus import LogBus
    from shared.service import create_service_app
    from shared.settings import Settings

    settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
    return create_service_app(SPEC, settings, bus=LogBus(), freeze_heap=freeze_heap)


def started_gateway(tmp: Path) -> Any:
    from gateway.app import create_gateway_app
    from shared.settings import Settings

    settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp}/hotline.db", env="test")
    return create_gateway_app(settings, freeze_heap=True)


@pytest.mark.parametrize("make_app", [started_service, started_gateway])
async def test_what_a_process_built_at_start_is_out_of_the_collectors_reach(
    make_app: Any, tmp_path: Path
) -> None:
    """Under load, full collections walked every object the process made at start (routes,
    models, catalogs, dictionaries) and paused the event loop for every waiting request:
    HTTP p99 at 32 clients was 160-200 ms with them, 88-92 ms without (bench-e2e)."""
    import gc

    gc.unfreeze()
    made_before_start = {"区": ["和平区", "河西区"]}
    app = make_app(tmp_path)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
            # frozen objects are in no generation a collection walks
            assert not any(o is made_before_start for o in gc.get_objects())
    finally:
        gc.unfreeze()


async def test_an_app_started_by_a_test_or_beside_others_freezes_nothing(tmp_path: Path) -> None:
    """Frozen objects are never collected: only a process serving one app freezes (the
    embedded process once every app has started), not each app of a test run."""
    import gc

    gc.unfreeze()
    app = started_service(tmp_path, freeze_heap=False)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0


class _Cycle:
    """A container that refers to itself: freed only by the cycle collector."""

    def __init__(self) -> None:
        self.me = self


def _young_collections_while(make: int) -> tuple[int, int]:
    """How many young-generation collections ran while ``make`` self-referring objects
    were made and dropped, and how many of those objects are still alive after."""
    import gc
    import weakref

    runs: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            runs.append(1)

    alive = weakref.WeakSet[_Cycle]()
    gc.collect()
    gc.callbacks.append(seen)
    try:
        for _ in range(make):
            alive.add(_Cycle())
    finally:
        gc.callbacks.remove(seen)
    return len(runs), len(alive)


@pytest.mark.parametrize("make_app", [started_service, started_gateway])
async def test_a_serving_process_looks_for_cycles_rarely_but_still_frees_them(
    make_app: Any, tmp_path: Path
) -> None:
    """CPython looks for reference cycles every 700 new containers; a request makes and
    drops thousands, so under load the collector ran ~700 times in 8,000 tickets in intake
    alone (5 % of its CPU). A serving process looks every 20,000, and cycles are still
    freed."""
    import gc

    before = gc.get_threshold()
    gc.unfreeze()
    app = make_app(tmp_path)
    try:
        async with app.router.lifespan_context(app):
            runs, _ = _young_collections_while(5_000)
            assert runs == 0  # CPython's own threshold: 7 or more
            runs, alive = _young_collections_while(100_000)
            assert runs >= 1
            assert alive < 100_000  # garbage cycles are collected, memory stays bounded
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
