"""How every process serves HTTP (shared/http_server.py): the same uvicorn settings, FastAPI's
own instrumentation off, and one edge layer for trace ids and metrics (shared/metrics.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from shared.http_server import HotlineProtocol, server_options


@pytest.mark.parametrize(
    "name", ["loop", "http", "access_log", "timeout_keep_alive", "server_header"]
)
def test_every_process_serves_with_the_same_settings(name: str) -> None:
    expected = {
        "loop": "uvloop",
        "http": HotlineProtocol,
        "access_log": False,
        "timeout_keep_alive": 75,
        "server_header": False,
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


async def test_the_edge_hands_back_the_servers_own_send() -> None:
    """The edge's ``send`` adds its header and notes the status, then hands the server's own
    send back to be awaited: no coroutine of its own, two a request."""
    from shared.metrics import Metrics, RequestEdge

    sent: list[Any] = []

    async def server_send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    handed_back: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in (
            {"type": "http.response.start", "status": 201, "headers": [(b"a", b"1")]},
            {"type": "http.response.body", "body": b"{}"},
        ):
            awaitable = send(message)
            handed_back.append(awaitable.cr_code is server_send.__code__)
            await awaitable

    metrics = Metrics()
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await RequestEdge(app, metrics)(scope, receive, server_send)

    assert handed_back == [True, True]
    assert sent[0]["headers"][:1] == [(b"a", b"1")]
    assert sent[0]["headers"][1] == (b"x-request-id", scope["state"]["trace_id"].encode())
    assert sent[1] == {"type": "http.response.body", "body": b"{}"}
    body, _ = metrics.exposition()
    assert b'_count{method="POST",route="unmatched",status="201"} 1.0' in body


def test_a_tallied_histogram_reads_as_prometheus_clients_own() -> None:
    """``TallyHistogram.tally`` counts as ``Histogram.observe`` would: the same buckets (an
    amount on a bound counts in that bound's), count and sum, read at any time, again."""
    import random

    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from shared.metrics import LATENCY_BUCKETS, TallyHistogram

    plain, tallied = CollectorRegistry(), CollectorRegistry()
    kinds: list[type[Histogram]] = [Histogram, TallyHistogram]
    observed, counted = (
        kind("h", "doc", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        for kind, registry in zip(kinds, [plain, tallied], strict=True)
    )
    draw = random.Random(12345)
    amounts = [0.0, 0.002, 0.0021, 0.005, 10.0, 10.5, *LATENCY_BUCKETS]
    for n in range(3000):
        amount = draw.choice([*amounts, draw.random(), draw.expovariate(50.0)])
        route = draw.choice(["/tickets", "/healthz"])
        observed.labels(route).observe(amount)
        cast(TallyHistogram, counted.labels(route)).tally(amount)
        if n % 700 == 0 or n == 2999:
            lines = [
                [line for line in generate_latest(registry).splitlines() if b"_created" not in line]
                for registry in (plain, tallied)
            ]
            assert lines[0] == lines[1]
    assert b'h_count{route="/tickets"}' in b"\n".join(lines[1])


async def test_the_edge_tallies_without_prometheus_clients_locks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request's sample is tallied (``TallyHistogram.tally``), not observed under the two
    locks of ``Histogram.observe``; what /metrics shows is the same."""
    from prometheus_client import Histogram

    def observe(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("observed under prometheus_client's locks")

    monkeypatch.setattr(Histogram, "observe", observe)
    app = service_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        for _ in range(2):
            assert (await c.get("/healthz")).status_code == 200
        body, _ = app.state.metrics.exposition()
        assert b'_count{method="GET",route="/healthz",status="200"} 2.0' in body
        assert b'_bucket{le="+Inf",method="GET",route="/healthz",status="200"} 2.0' in body
        assert (await c.get("/healthz")).status_code == 200

    body, _ = app.state.metrics.exposition()
    assert b'_count{method="GET",route="/healthz",status="200"} 3.0' in body


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


class _Writes:
    """A connection's transport, recording each write before passing it on."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _recording_protocol(writes: list[bytes]) -> Any:
    class Recording(HotlineProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(cast(Any, _Writes(transport, writes)))

    return Recording


@asynccontextmanager
async def _serving(
    app: Any, server_class: Any = None, **options: Any
) -> AsyncIterator[tuple[Any, tuple[str, int]]]:
    """``app`` served in the test's loop on a port of its own (by ``Server`` unless told
    otherwise): the server and its address."""
    import asyncio
    import socket

    import uvicorn

    from shared.http_server import Server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, **server_options(lifespan="off", loop="asyncio", **options))
    server = (server_class or Server)(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield server, sock.getsockname()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)


async def _answer_to(reader: Any, writer: Any, request: bytes) -> tuple[bytes, bytes]:
    """The head and the body of the answer to ``request`` (a Content-Length or chunked)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if request.startswith(b"HEAD"):
        return head, b""
    if b"transfer-encoding: chunked" in head:
        return head, await reader.readuntil(b"0\r\n\r\n")
    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


async def test_a_responses_head_goes_out_with_its_body() -> None:
    """uvicorn wrote a response's head and body as two writes (two system calls, two
    segments, and the client woke for each); a whole body now goes out with its head. A
    streamed answer, a body in parts and a HEAD answer go as before, head first."""
    import asyncio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/streamed":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            await send({"type": "http.response.body", "body": b"two"})
            return
        headers = [(b"content-length", b"6"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        if path == "/parts":
            await send({"type": "http.response.body", "body": b"abc", "more_body": True})
            await send({"type": "http.response.body", "body": b"def"})
            return
        body = b"" if scope["method"] == "HEAD" else b"abcdef"
        await send({"type": "http.response.body", "body": body})

    def request(method: str, path: str) -> bytes:
        return f"{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n".encode()

    writes: list[bytes] = []
    async with _serving(app, http=_recording_protocol(writes)) as (_, address):
        reader, writer = await asyncio.open_connection(*address)
        head, body = await _answer_to(reader, writer, request("POST", "/whole"))
        assert head.startswith(b"HTTP/1.1 201") and body == b"abcdef"
        assert writes == [head + body]  # one write
        writes.clear()

        head, body = await _answer_to(reader, writer, request("GET", "/parts"))
        assert body == b"abcdef"
        assert writes == [head, b"abc", b"def"]  # as uvicorn writes it
        writes.clear()

        head, _ = await _answer_to(reader, writer, request("HEAD", "/whole"))
        assert b"content-length: 6" in head
        assert writes == [head]
        writes.clear()

        head, body = await _answer_to(reader, writer, request("GET", "/streamed"))
        assert body == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
        assert writes[0] == head  # the head as soon as it is made, then each part
        assert b"".join(writes[1:]) == body
        writer.close()


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


_GET = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"


async def test_an_idle_keep_alive_connection_is_closed_by_the_servers_sweep() -> None:
    """uvicorn armed a timer after each response to close the connection once idle for
    ``timeout_keep_alive`` and cancelled it when the next request came: ~2 µs a request.
    The server's once-a-second sweep closes it instead, no earlier, and never one whose
    request is in flight."""
    import asyncio

    answered = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            answered.set()
            await release.wait()
        await _ok(scope, receive, send)

    loop = asyncio.get_running_loop()
    async with _serving(app) as (server, address):
        idle_reader, idle_writer = await asyncio.open_connection(*address)
        busy_reader, busy_writer = await asyncio.open_connection(*address)
        await _answer_to(idle_reader, idle_writer, _GET)
        answered_at = loop.time()
        (protocol,) = [
            c
            for c in server.server_state.connections
            if isinstance(c, HotlineProtocol) and c.idle_since is not None
        ]
        assert protocol.timeout_keep_alive_task is None  # no timer of its own
        busy_writer.write(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        await answered.wait()

        server.close_idle_connections(answered_at + 74.9)
        assert not protocol.transport.is_closing()
        server.close_idle_connections(answered_at + 75.1 + 3600)
        assert protocol.transport.is_closing()
        assert await idle_reader.read() == b""  # closed

        release.set()  # the request in flight was not cut off
        _, body = await _answer_to(busy_reader, busy_writer, b"")
        assert body == b"ok"
        busy_writer.close()
        idle_writer.close()


async def test_a_response_names_no_server_software_but_keeps_its_date() -> None:
    import asyncio

    async with _serving(_ok) as (_, address):
        reader, writer = await asyncio.open_connection(*address)
        head, body = await _answer_to(reader, writer, _GET)
        writer.close()
    assert body == b"ok"
    assert b"\r\ndate: " in head
    assert b"\r\nserver:" not in head.lower()


async def test_under_a_server_that_does_not_sweep_the_connection_keeps_uvicorns_timer() -> None:
    import asyncio

    import uvicorn

    async with _serving(_ok, uvicorn.Server) as (server, address):
        reader, writer = await asyncio.open_connection(*address)
        _, body = await _answer_to(reader, writer, _GET)
        assert body == b"ok"
        (protocol,) = server.server_state.connections
        assert isinstance(protocol, HotlineProtocol)
        assert protocol.timeout_keep_alive_task is not None
        writer.close()


class _Kept:
    """A transport keeping what is written."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(cycle_class: Any, method: str, keep_alive: bool) -> Any:
    import asyncio
    import logging

    class Flow:
        write_paused = False

    log = logging.getLogger("test")
    date = [(b"date", b"Sun, 06 Dec 2026 02:50:00 GMT"), (b"server", b"uvicorn")]
    scope = {"type": "http", "method": method, "path": "/"}
    return cycle_class(
        scope, _Kept(), Flow(), log, log, False, date, asyncio.Event(), False, keep_alive, list
    )


HEADS: dict[str, tuple[str, bool, int, list[tuple[bytes, bytes]], bytes]] = {
    "a length": ("POST", True, 201, [(b"content-length", b"2"), (b"x-a", b"1")], b"ok"),
    "upper-case names": ("GET", True, 200, [(b"Content-Length", b"2"), (b"X-A", b"b")], b"ok"),
    "no length: chunked": ("GET", True, 200, [(b"content-type", b"text/plain")], b"ok"),
    "chunked given": ("GET", True, 200, [(b"transfer-encoding", b"chunked")], b"ok"),
    "connection: close": (
        "GET",
        True,
        200,
        [(b"connection", b"Keep, Close"), (b"content-length", b"2")],
        b"ok",
    ),
    "a request closing": ("GET", False, 200, [(b"content-length", b"2")], b"ok"),
    "HEAD": ("HEAD", True, 200, [(b"content-length", b"2")], b""),
    "204": ("DELETE", True, 204, [], b""),
    "a tab in a value": ("GET", True, 200, [(b"x-a", b"a\tb"), (b"content-length", b"2")], b"ok"),
    "a bad name": ("GET", True, 200, [(b"x a", b"1"), (b"content-length", b"2")], b"ok"),
    "a bad value": ("GET", True, 200, [(b"content-length", b"2"), (b"x-a", b"1\n2")], b"ok"),
    "a name with a colon": ("GET", True, 200, [(b"x:a", b"1")], b"ok"),
    "a value with a DEL": ("GET", True, 200, [(b"x-a", b"\x7f")], b"ok"),
    "server headers of its own": ("GET", True, 200, [(b"content-length", b"2")], b"ok"),
    "a server header framing": ("GET", True, 200, [(b"content-length", b"2")], b"ok"),
    "a bad server header": ("GET", True, 200, [(b"content-length", b"2")], b"ok"),
}
# the server's headers (uvicorn's ``date`` and ``server`` and any configured: lower-case
# names) of the cases that have other than ``_cycle``'s
SERVER_HEADERS: dict[str, list[tuple[bytes, bytes]]] = {
    "server headers of its own": [(b"date", b"D"), (b"server", b"s"), (b"x-b", b"Up")],
    "a server header framing": [(b"date", b"D"), (b"connection", b"close")],
    "a bad server header": [(b"date", b"D"), (b"x-b", b"a\r\nb")],
}


@pytest.mark.parametrize("case", HEADS)
async def test_a_responses_head_is_uvicorns_to_the_byte(case: str) -> None:
    """The head is made here, not by uvicorn (its two regex checks a header made once over
    all names and once over all values): the same bytes, the same connection state, the
    same refusal of a header uvicorn refuses."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from shared.http_server import _HeadWithBody

    method, keep_alive, status, headers, body = HEADS[case]
    seen = []
    for cycle_class in (RequestResponseCycle, _HeadWithBody):
        cycle = _cycle(cycle_class, method, keep_alive)
        cycle.default_headers = SERVER_HEADERS.get(case, cycle.default_headers)
        try:
            await cycle.send({"type": "http.response.start", "status": status, "headers": headers})
            await cycle.send({"type": "http.response.body", "body": body})
            refused = None
        except RuntimeError as exc:  # the server closes the connection: its state is done with
            refused = str(exc)
        state = (
            None if refused else (cycle.keep_alive, cycle.chunked_encoding, cycle.response_complete)
        )
        seen.append((refused, cycle.transport.written, cycle.transport.closed, state))
    assert seen[0] == seen[1]


async def test_a_responses_header_names_and_values_are_each_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The app's header names and values are searched once each, joined; the server's own
    (``date``, ``server``: a list made anew each second) once per list, and made into bytes
    once."""
    import shared.http_server
    from shared.http_server import _HeadWithBody

    searched: list[bytes] = []

    class Counted:
        def __init__(self, pattern: Any) -> None:
            self.pattern = pattern

        def search(self, text: bytes) -> Any:
            searched.append(text)
            return self.pattern.search(text)

    for name in ("HEADER_RE", "HEADER_VALUE_RE"):
        monkeypatch.setattr(shared.http_server, name, Counted(getattr(shared.http_server, name)))
    headers = [(b"content-length", b"2"), (b"content-type", b"a/b"), (b"x-request-id", b"r")]
    first = _cycle(_HeadWithBody, "POST", True)
    written = []
    for cycle in (first, _cycle(_HeadWithBody, "POST", True), _cycle(_HeadWithBody, "POST", True)):
        cycle.default_headers = first.default_headers  # the same second's
        await cycle.send({"type": "http.response.start", "status": 201, "headers": headers})
        await cycle.send({"type": "http.response.body", "body": b"ok"})
        written.append(cycle.transport.written)
    assert searched == [
        b"dateserver",
        b"Sun, 06 Dec 2026 02:50:00 GMTuvicorn",
        *[b"content-lengthcontent-typex-request-id", b"2a/br"] * 3,
    ]
    head = (
        b"HTTP/1.1 201 Created\r\ndate: Sun, 06 Dec 2026 02:50:00 GMT\r\nserver: uvicorn\r\n"
        b"content-length: 2\r\ncontent-type: a/b\r\nx-request-id: r\r\n\r\n"
    )
    assert written == [head + b"ok"] * 3


# Requests as a client may send them, each answered by the app below; the server must read
# and answer them as uvicorn's own protocol does (HotlineProtocol's lean parts: the targets
# kept, the cycle made at once, the body handed over without a wait, the head's defaults).
_TRAFFIC: dict[str, bytes] = {
    "a body": b"POST /tickets?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    "the same target again": (
        b"POST /tickets?x=1&y=%20 HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi"
    ),
    "percent-encoded path": b"GET /a%20b/%E5%92%8C?q=%E5%92%8C HTTP/1.1\r\nhost: t\r\n\r\n",
    "pipelined": (
        b"GET /one HTTP/1.1\r\nhost: t\r\n\r\nPOST /two HTTP/1.1\r\nhost: t\r\n"
        b"content-length: 3\r\n\r\nabcGET /three?z HTTP/1.1\r\nhost: t\r\n\r\n"
    ),
    "chunked body": (
        b"POST /chunks HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    ),
    "trailing spaces, upper-case names": (
        b"GET /h HTTP/1.1\r\nHOST: t \r\nX-Forwarded-For: 10.0.0.9\t\r\nX-A: b\r\n\r\n"
    ),
    "expect 100-continue": (
        b"POST /e HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nok"
    ),
    "HTTP/1.0": b"GET /old HTTP/1.0\r\nhost: t\r\n\r\n",
    "connection: close": b"GET /bye HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    "HEAD": b"HEAD /h HTTP/1.1\r\nhost: t\r\n\r\n",
    "a bad request": b"GET /x HTTP/1.1\r\nhost: t\r\nbad header\r\n\r\n",
    "a bad target": b"GET http://[ HTTP/1.1\r\nhost: t\r\n\r\n",
    "a non-ASCII target": b"GET /\xe5\x92\x8c HTTP/1.1\r\nhost: t\r\n\r\n",
}


async def _served_as(protocol: Any, request: bytes) -> tuple[list[Any], bytes]:
    """What ``protocol`` (a class) hands an app of ``request`` (its scope and messages) and
    the bytes it answers with (the date header taken out), on a real connection."""
    import asyncio
    import re

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kept = {k: v for k, v in scope.items() if k not in ("state", "asgi", "server")}
        kept["client"] = (scope["client"][0], 0)  # its port is the connection's
        seen.append(kept)
        more = True
        body = b""
        while more:
            message = await receive()
            seen.append(message)
            more = message.get("more_body", False)
            body += message.get("body", b"")
        answer = b"%s %s %s" % (scope["method"].encode(), scope["raw_path"], body)
        headers = [(b"content-length", b"%d" % len(answer)), (b"X-Path", scope["raw_path"])]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async with _serving(app, http=protocol, proxy_headers=False) as (_, address):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request)
        answered = b""
        try:
            async with asyncio.timeout(0.5):
                while chunk := await reader.read(65536):
                    answered += chunk
        except TimeoutError:
            pass  # a kept-alive connection: all in
        writer.close()
    return seen, re.sub(rb"date: [^\r]*\r\n", b"", answered)


@pytest.mark.parametrize("case", _TRAFFIC)
async def test_requests_are_read_and_answered_as_uvicorn_does(case: str) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    request = _TRAFFIC[case]
    # twice each: the second time a target is one the server has seen
    expected = await _served_as(HttpToolsProtocol, request + request)
    found = await _served_as(HotlineProtocol, request + request)
    assert found == expected
    assert expected[1]  # answered


async def test_a_target_seen_before_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process serves the same few request targets all day: the scope's path, raw path
    and query string made of one are kept for the next request to it."""
    import httptools

    parsed: list[bytes] = []
    parse_url = httptools.parse_url
    monkeypatch.setattr(httptools, "parse_url", lambda url: parsed.append(url) or parse_url(url))
    request = b"GET /kept/target?q=%E5%92%8C HTTP/1.1\r\nhost: t\r\n\r\n"
    seen, _ = await _served_as(HotlineProtocol, request * 3)

    assert parsed == [b"/kept/target?q=%E5%92%8C"]
    scopes = [one for one in seen if "path" in one]
    assert [(s["path"], s["raw_path"], s["query_string"]) for s in scopes] == [
        ("/kept/target", b"/kept/target", b"q=%E5%92%8C")
    ] * 3


async def test_a_whole_body_is_handed_over_without_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request whose body came whole with its head (as the gateway's and the clients'
    do): the app's ``receive`` gets it at once, not by uvicorn's ``receive`` and its wait on
    the cycle's event."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    waited: list[object] = []
    receive = RequestResponseCycle.receive

    async def counted(self: Any) -> Any:
        waited.append(self)
        return await receive(self)

    monkeypatch.setattr(RequestResponseCycle, "receive", counted)
    request = b"POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello"
    seen, answered = await _served_as(HotlineProtocol, request * 2)

    assert [m for m in seen if m.get("type") == "http.request"] == [
        {"type": "http.request", "body": b"hello", "more_body": False}
    ] * 2
    assert answered.count(b"POST /b hello") == 2
    assert waited == []


_FORWARDED_CASES = [
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-for", b"10.1.2.3")]),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-for", b"10.1.2.3, 127.0.0.1")]),
    (
        "127.0.0.1",
        "127.0.0.1",
        [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
    ),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-for", b"")]),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-for", b"[::1]:99, 10.0.0.1:8080")]),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-proto", b"https")]),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-proto", b" wss ")]),
    ("127.0.0.1", "127.0.0.1", [(b"x-forwarded-proto", b"gopher")]),
    ("10.9.9.9", "127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]),
    ("10.9.9.9", "10.0.0.0/8", [(b"x-forwarded-for", b"1.2.3.4, 10.0.0.5")]),
    ("10.9.9.9", "*", [(b"x-forwarded-for", b"1.2.3.4, 10.0.0.5")]),
    (None, "127.0.0.1", [(b"x-forwarded-for", b"1.2.3.4")]),
    ("127.0.0.1", "127.0.0.1", [(b"host", b"t")]),
]


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
@pytest.mark.parametrize("case", range(len(_FORWARDED_CASES)))
async def test_the_proxy_headers_layer_rewrites_the_scope_as_uvicorns(
    case: int, scope_type: str
) -> None:
    """The gateway's proxy-headers layer (``ForwardedHeaders``) rewrites a scope's client and
    scheme as uvicorn's does, and hands back the app's own coroutine: no coroutine of its
    own around it."""
    import inspect

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from shared.http_server import ForwardedHeaders

    client, trusted, headers = _FORWARDED_CASES[case]
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["scheme"]))

    for layer in (ProxyHeadersMiddleware, ForwardedHeaders):
        scope = {
            "type": scope_type,
            "scheme": "http" if scope_type == "http" else "ws",
            "client": None if client is None else (client, 5000),
            "headers": headers,
        }
        await layer(app, trusted_hosts=trusted)(scope, None, None)  # type: ignore[arg-type]
    assert seen[0] == seen[1]
    assert not inspect.iscoroutinefunction(ForwardedHeaders.__call__)


async def test_a_server_with_proxy_headers_uses_the_lean_layer() -> None:
    """As the gateway serves (uvicorn's proxy headers on): the client a trusted proxy names."""
    import asyncio

    from shared.http_server import ForwardedHeaders

    clients = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        clients.append(scope["client"])
        await _ok(scope, receive, send)

    async with _serving(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as (
        server,
        address,
    ):
        assert type(server.config.loaded_app) is ForwardedHeaders
        reader, writer = await asyncio.open_connection(*address)
        forwarded = b"GET / HTTP/1.1\r\nhost: t\r\nx-forwarded-for: 10.1.2.3\r\n\r\n"
        _, body = await _answer_to(reader, writer, forwarded)
        assert body == b"ok"
        writer.close()
    assert clients == [("10.1.2.3", 0)]
