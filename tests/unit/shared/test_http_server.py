"""The HTTP server every process runs (shared/http_server.py): uvicorn's httptools protocol,
sending what one turn of the event loop writes as one write; a streamed response's parts
still go out as they are made, and a closing connection sends what was written first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from shared.http_server import CoalescingHttpToolsProtocol, server_options

GET = b"GET / HTTP/1.1\r\nHost: service\r\n\r\n"
GET_AND_CLOSE = b"GET / HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n"


class WireTransport(asyncio.Transport):
    """What the protocol does to its connection, in order: ("write", bytes) or ("close",)."""

    def __init__(self) -> None:
        super().__init__()
        self.done: list[tuple[Any, ...]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        assert not self.closing, "written after close"
        self.done.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.done.append(("close",))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8001)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def writes(self) -> list[bytes]:
        return [step[1] for step in self.done if step[0] == "write"]


async def connect(
    app: Any, protocol_class: type = CoalescingHttpToolsProtocol
) -> tuple[Any, WireTransport]:
    config = Config(app=app, **server_options(lifespan="off"))
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = WireTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def whole_response(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def test_a_whole_response_goes_out_as_one_write() -> None:
    protocol, transport = await connect(whole_response)

    protocol.data_received(GET)
    await turns()

    assert transport.writes == [transport.writes[0]]
    assert transport.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n{}")


async def test_uvicorns_own_protocol_writes_head_and_body_apart() -> None:
    """What the coalescing is for (uvicorn 0.55): without it, two writes, two segments."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    protocol, transport = await connect(whole_response, HttpToolsProtocol)

    protocol.data_received(GET)
    await turns()

    assert len(transport.writes) == 2


async def test_a_streamed_response_sends_each_part_as_it_is_made() -> None:
    """The console's live board (SSE) must see its head and first event before the next."""
    next_event = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await next_event.wait()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    protocol, transport = await connect(stream)
    protocol.data_received(GET)
    await turns()

    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"data: 1\n\n" in transport.writes[0]

    next_event.set()
    await turns()
    assert len(transport.writes) == 2
    assert b"data: 2\n\n" in transport.writes[1]


async def test_a_connection_the_server_closes_sends_the_response_before_the_close() -> None:
    protocol, transport = await connect(whole_response)

    protocol.data_received(GET_AND_CLOSE)
    await turns()

    assert [step[0] for step in transport.done] == ["write", "close"]
    assert transport.writes[0].endswith(b"{}")


async def test_nothing_is_written_to_a_connection_lost_meanwhile() -> None:
    protocol, transport = await connect(whole_response)

    protocol.data_received(GET)
    await turns(1)  # the app ran and wrote; the write waits for the end of the turn
    transport.closing = True  # the client went away in the same turn
    await turns()

    assert transport.writes == []


@pytest.mark.parametrize("name", ["loop", "http", "access_log", "timeout_keep_alive"])
def test_every_process_serves_with_the_same_settings(name: str) -> None:
    expected = {
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
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
