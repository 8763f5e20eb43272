"""The gateway's HTTP/1.1 transport to services, against a scripted server on loopback
and against a real uvicorn (the services' server)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop

import gateway.proxy
from gateway.app import create_gateway_app
from gateway.proxy import KEEPALIVE_EXPIRY
from gateway.transport import REPLAYABLE, HTTP1Transport, Origin, _Slots
from shared.auth import Role, verify_headers
from shared.http_server import Server, server_options
from shared.settings import Settings
from tests.unit.gateway.conftest import PASSWORDS, gateway_problem

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
CLOSE = "close without answering"
HANG = "never answer"


class ScriptedServer:
    """Answers each request with the next scripted reply; records requests per connection."""

    def __init__(self, replies: list[bytes | str]) -> None:
        self.replies = replies
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self.connections = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append((connection, head, body))
                reply = self.replies.pop(0)
                if reply == CLOSE:
                    return
                if reply == HANG:
                    # never answer: the client's own timeout must end the request
                    await asyncio.Event().wait()
                    return
                assert isinstance(reply, bytes)
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    return
        finally:
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[list[bytes | str]], Any]]:
    servers: list[ScriptedServer] = []

    async def start(replies: list[bytes | str]) -> ScriptedServer:
        server = ScriptedServer(replies)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()


def client_for(server: ScriptedServer, transport: HTTP1Transport, **kwargs: Any) -> Any:
    return httpx.AsyncClient(base_url=server.url, transport=transport, **kwargs)


async def test_a_kept_alive_connection_carries_the_next_request(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([OK, OK])
    async with client_for(server, HTTP1Transport()) as client:
        first = await client.get("/tickets/T%201?q=%E5%A4%A9&x=a+b")
        second = await client.post("/tickets", content=b'{"a": 1}')

    assert (first.status_code, first.json(), second.json()) == (200, {"ok": True}, {"ok": True})
    assert first.headers["content-type"] == "application/json"
    assert server.connections == 1
    (_, head1, _), (_, head2, body2) = server.requests
    assert head1.startswith(b"GET /tickets/T%201?q=%E5%A4%A9&x=a+b HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in head1.lower()
    assert head2.startswith(b"POST /tickets HTTP/1.1\r\n")
    assert body2 == b'{"a": 1}'


async def test_a_chunked_response_is_read_whole(scripted: Callable[..., Any]) -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n5\r\n: 1}\n\r\n0\r\n\r\n'
    )
    server = await scripted([chunked, OK])
    async with client_for(server, HTTP1Transport()) as client:
        response = await client.get("/x")
        again = await client.get("/x")

    assert (response.status_code, response.content) == (201, b'{"a": 1}\n')
    assert again.status_code == 200
    assert server.connections == 1


async def test_a_head_response_ends_with_its_headers(scripted: Callable[..., Any]) -> None:
    head_reply = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n"
    server = await scripted([head_reply, OK])
    async with client_for(server, HTTP1Transport()) as client:
        head = await client.head("/x")
        get = await client.get("/x")

    assert (head.status_code, head.content) == (200, b"")
    assert get.json() == {"ok": True}
    assert server.connections == 1


async def test_a_connection_the_service_closes_is_not_reused(
    scripted: Callable[..., Any],
) -> None:
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    server = await scripted([closing, OK])
    async with client_for(server, HTTP1Transport()) as client:
        assert (await client.get("/x")).content == b"ok"
        assert (await client.get("/x")).json() == {"ok": True}

    assert server.connections == 2


async def test_an_idle_connection_past_its_expiry_is_not_reused(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([OK, OK])
    async with client_for(server, HTTP1Transport(keepalive_expiry=0)) as client:
        await client.get("/x")
        await client.get("/x")

    assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "headers", "extensions"),
    [
        ("GET", {}, {}),
        # a POST the service makes once per Idempotency-Key is as safe to repeat as a GET
        ("POST", {"idempotency-key": "k-1"}, {REPLAYABLE: True}),
    ],
)
async def test_a_request_safe_to_repeat_on_a_connection_closed_under_it_is_sent_again(
    scripted: Callable[..., Any],
    method: str,
    headers: dict[str, str],
    extensions: dict[str, Any],
) -> None:
    server = await scripted([OK, CLOSE, OK])
    async with client_for(server, HTTP1Transport()) as client:
        await client.get("/x")
        response = await client.request(
            method, "/y", content=b"{}", headers=headers, extensions=extensions
        )

    assert response.json() == {"ok": True}
    assert [(c, head.split(b" ")[:2]) for c, head, _ in server.requests] == [
        (1, [b"GET", b"/x"]),
        (1, [method.encode(), b"/y"]),
        (2, [method.encode(), b"/y"]),
    ]


async def test_a_post_on_a_connection_closed_under_it_is_not_sent_twice(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([OK, CLOSE, OK])
    async with client_for(server, HTTP1Transport()) as client:
        await client.get("/x")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/tickets", content=b"{}")

    assert len(server.requests) == 2


async def test_a_refused_connection_is_a_connect_error(scripted: Callable[..., Any]) -> None:
    server = await scripted([])
    url = server.url
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()

    async with httpx.AsyncClient(base_url=url, transport=HTTP1Transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/x")


async def test_a_service_that_does_not_answer_is_a_read_timeout(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([HANG])
    async with client_for(server, HTTP1Transport(), timeout=httpx.Timeout(5, read=0.1)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/x")


async def test_a_shorter_read_timeout_ends_its_request_while_a_longer_one_waits(
    scripted: Callable[..., Any],
) -> None:
    """One timer watches every request's read deadline: a request with an earlier deadline
    than those already waiting brings it forward; the others wait on."""
    server = await scripted([HANG, HANG])
    transport = HTTP1Transport()
    async with client_for(server, transport) as client:
        patient = asyncio.create_task(client.get("/x", timeout=httpx.Timeout(5, read=30)))
        while not server.requests:
            await asyncio.sleep(0.01)
        async with asyncio.timeout(2):  # not the other's 30 s
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/y", timeout=httpx.Timeout(5, read=0.1))

        assert not patient.done()
        patient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await patient


async def test_past_max_connections_a_request_waits_for_a_free_one_or_its_pool_timeout(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([HANG, OK, OK, HANG])
    transport = HTTP1Transport(max_connections=2)
    async with client_for(server, transport) as client:
        stuck = asyncio.create_task(client.get("/stuck", timeout=httpx.Timeout(5, read=30)))
        while not server.requests:
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(client.get("/b"))
        assert (await client.get("/a")).json() == {"ok": True}  # the second connection
        assert (await waiting).json() == {"ok": True}  # its connection, freed
        # both taken, both hanging: the next waits its pool timeout
        patient = asyncio.create_task(client.get("/c", timeout=httpx.Timeout(5, read=30)))
        while len(server.requests) < 4:
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/d", timeout=httpx.Timeout(5, pool=0.05))
        for task in (stuck, patient):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_slots_go_to_waiting_requests_in_order_and_none_is_lost() -> None:
    slots = _Slots(2)
    assert slots.take() and slots.take() and not slots.take()
    order: list[str] = []

    async def request(name: str, timeout: float | None) -> None:
        await slots.wait(timeout)
        order.append(name)

    first = asyncio.create_task(request("first", None))
    late = asyncio.create_task(request("late", 0.01))
    second = asyncio.create_task(request("second", None))
    with pytest.raises(TimeoutError):
        await late
    given_up = asyncio.create_task(request("given up", None))
    await asyncio.sleep(0)
    slots.release()  # to the first waiting: the one that timed out is passed by
    given_up.cancel()  # handed nothing yet: gives up its turn
    slots.release()
    await asyncio.gather(first, second)
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert order == ["first", "second"]
    assert not slots.take()  # both slots taken by them
    slots.release()
    slots.release()
    assert slots.take() and slots.take() and not slots.take()  # no slot lost or made

    handed = asyncio.create_task(request("cancelled once handed", None))
    await asyncio.sleep(0)
    slots.release()  # handed its slot, then cancelled before it runs: it passes it on
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert slots.take() and not slots.take()


async def test_a_body_larger_than_the_socket_takes_at_once_is_sent_whole(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([OK])
    body = bytes(range(256)) * 32768  # 8 MiB: the socket takes it in many turns
    async with client_for(server, HTTP1Transport()) as client:
        response = await client.post("/upload", content=body)

    assert response.json() == {"ok": True}
    assert server.requests[0][2] == body


async def test_a_service_that_does_not_read_the_request_is_a_write_timeout() -> None:
    heard = asyncio.Event()

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.set()
        await asyncio.Event().wait()

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    timeout = httpx.Timeout(5, write=0.1)
    try:
        async with httpx.AsyncClient(transport=HTTP1Transport(), timeout=timeout) as client:
            with pytest.raises(httpx.WriteTimeout):
                await client.post(f"http://{host}:{port}/upload", content=b"x" * (64 << 20))
    finally:
        server.close()
    assert heard.is_set()


@asynccontextmanager
async def gateway_before(
    server: ScriptedServer, settings: Settings, username: str = "op1"
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The gateway with ``server`` as intake, and the authorization of ``username``
    (an operator by default)."""
    app = create_gateway_app(settings.model_copy(update={"intake_url": server.url}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORDS[username]}
            )
            yield client, {"authorization": f"Bearer {login.json()['access_token']}"}


async def test_the_gateway_signs_what_it_sends_over_the_wire(
    scripted: Callable[..., Any], settings: Settings
) -> None:
    server = await scripted([OK])
    async with gateway_before(server, settings, "unit1") as (client, authorization):
        response = await client.get("/api/v1/intake/tickets?mine=1", headers=authorization)

    assert response.json() == {"ok": True}
    ((_, head, _),) = server.requests
    request_line, *header_lines = head.decode().strip().split("\r\n")
    assert request_line == "GET /tickets?mine=1 HTTP/1.1"
    headers = [tuple(p.strip() for p in line.split(":", 1)) for line in header_lines]
    caller = verify_headers(
        settings.service_secret, headers, "GET", "/tickets", query=b"mine=1", body=b""
    )
    assert (caller.role, caller.unit_id) == (Role.UNIT, "120101-housing")
    assert "authorization" not in {name.lower() for name, _ in headers}


def posts(server: ScriptedServer) -> list[tuple[int, bytes]]:
    """(connection, request line) of each POST the service received."""
    return [(c, head.split(b"\r\n")[0]) for c, head, _ in server.requests if b"POST" in head[:5]]


async def test_a_registration_intake_lost_with_the_connection_is_sent_again_with_its_key(
    scripted: Callable[..., Any], settings: Settings
) -> None:
    """Intake registers a ticket once per caller and Idempotency-Key, so the gateway may
    send the registration again when intake closed the connection before answering: the
    operator gets the answer, not an error about a ticket that may or may not exist."""
    server = await scripted([OK, CLOSE, OK])
    async with gateway_before(server, settings) as (client, authorization):
        await client.get("/api/v1/intake/tickets", headers=authorization)
        response = await client.post(
            "/api/v1/intake/tickets",
            content=b"{}",
            headers={**authorization, "idempotency-key": "call-1"},
        )

    assert response.json() == {"ok": True}
    assert posts(server) == [(1, b"POST /tickets HTTP/1.1"), (2, b"POST /tickets HTTP/1.1")]
    assert all(b"\r\nidempotency-key: call-1\r\n" in head for _, head, _ in server.requests[1:])


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/tickets", None),  # no key: a second send could register a second ticket
        ("/tickets/T1/call-rating", "rating-1"),  # a route that makes no use of a key
    ],
)
async def test_a_write_lost_with_the_connection_is_a_502_problem_not_a_dropped_connection(
    scripted: Callable[..., Any], settings: Settings, path: str, key: str | None
) -> None:
    """A write the gateway may not repeat: the client gets an answer that says what
    happened (it may or may not have taken effect) and when to try again."""
    server = await scripted([OK, CLOSE])
    async with gateway_before(server, settings) as (client, authorization):
        await client.get("/api/v1/intake/tickets", headers=authorization)
        headers = {**authorization, **({"idempotency-key": key} if key else {})}
        response = await client.post(f"/api/v1/intake{path}", content=b"{}", headers=headers)

    problem = gateway_problem(response, 502)
    assert problem["service"] == "intake"
    assert "may or may not have taken effect" in problem["detail"]
    assert posts(server) == [(1, f"POST {path} HTTP/1.1".encode())]  # sent once


async def test_a_service_that_cannot_be_reached_is_a_503_problem(
    scripted: Callable[..., Any], settings: Settings
) -> None:
    server = await scripted([])
    async with gateway_before(server, settings) as (client, authorization):
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()
        response = await client.post("/api/v1/intake/tickets", content=b"{}", headers=authorization)

    problem = gateway_problem(response, 503)
    assert (problem["service"], server.requests) == ("intake", [])


async def test_a_service_that_does_not_answer_in_time_is_a_504_problem(
    scripted: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.proxy, "_TIMEOUTS", {**gateway.proxy._TIMEOUTS, "read": 0.1})
    server = await scripted([HANG])
    async with gateway_before(server, settings) as (client, authorization):
        response = await client.get("/api/v1/intake/tickets", headers=authorization)

    problem = gateway_problem(response, 504)
    assert problem["service"] == "intake"
    assert "may or may not have taken effect" in problem["detail"]


def _heard(server: ScriptedServer) -> list[tuple[bytes, list[bytes], bytes]]:
    """Each request as the service got it: request line, header lines (any order), body."""
    heard = []
    for _, head, body in server.requests:
        line, *fields = head.rstrip(b"\r\n").split(b"\r\n")
        heard.append((line, sorted(f.lower() for f in fields), body))
    return heard


@pytest.mark.parametrize(
    ("method", "body"), [("GET", b""), ("POST", b'{"a": 1}'), ("POST", b""), ("DELETE", b"")]
)
async def test_send_puts_on_the_wire_what_an_httpx_request_would(
    scripted: Callable[..., Any], method: str, body: bytes
) -> None:
    """The proxy's way (``send``, no httpx objects) and the way it took before, an
    ``httpx.Request``: the service cannot tell them apart."""
    server = await scripted([OK, OK])
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r-1")]
    target = "/tickets/T%201?q=%E5%A4%A9"
    transport = HTTP1Transport()
    request = httpx.Request(method, server.url + target, headers=headers, content=body)
    by_httpx = await transport.handle_async_request(request)
    answer = await transport.send(
        Origin.of(httpx.URL(server.url)),
        method,
        target.encode(),
        headers,
        body,
        replayable=False,
        timeouts={},
    )
    await transport.aclose()

    by_httpx_heard, send_heard = _heard(server)
    assert send_heard == by_httpx_heard
    assert (answer.status, answer.content) == (by_httpx.status_code, await by_httpx.aread())
    assert answer.headers == by_httpx.headers.raw


class UvicornThread:
    """A real uvicorn server as the services run it (httptools on uvloop, their keep-alive)
    on a thread of its own, so that the test's event loop stays still while the server acts."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = Server(uvicorn.Config(app, **server_options(lifespan="off")))
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        )

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        self._wait(lambda: self.server.started, "the server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.loop.close()

    def close_idle_connections(self) -> None:
        """What uvicorn does when an idle connection's keep-alive time is up, now; returns
        once the server has closed the sockets (the client has the FIN), without giving the
        caller's event loop a turn to notice."""
        state = self.server.server_state
        self.loop.call_soon_threadsafe(
            lambda: [p.timeout_keep_alive_handler() for p in list(state.connections)]
        )
        self._wait(lambda: not state.connections, "the server kept its connections")

    @staticmethod
    def _wait(done: Callable[[], bool], failure: str) -> None:
        deadline = time.monotonic() + 10
        while not done():
            assert time.monotonic() < deadline, failure
            time.sleep(0.001)


COUNTS: dict[str, int] = {}


async def counting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with the number of requests it has had on that path."""
    while (await receive()).get("more_body"):
        pass
    seen = COUNTS[scope["path"]] = COUNTS.get(scope["path"], 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(seen).encode()})


@pytest.fixture
def uvicorn_service() -> Iterator[UvicornThread]:
    COUNTS.clear()
    with UvicornThread(counting_app) as server:
        yield server


async def test_a_connection_the_service_has_just_closed_is_not_reused(
    uvicorn_service: UvicornThread,
) -> None:
    """The race behind "closed the connection without answering": the service's keep-alive
    time runs out just as the gateway takes the idle connection for its next request. The
    service's FIN has arrived but the gateway's busy event loop has not yet read it, so only
    the socket knows; a POST sent into the closed connection would be lost with it."""
    async with httpx.AsyncClient(base_url=uvicorn_service.url, transport=HTTP1Transport()) as c:
        assert (await c.get("/x")).text == "1"
        uvicorn_service.close_idle_connections()
        response = await c.post("/tickets", content=b"{}")

    assert (response.status_code, response.text) == (200, "1")  # sent once, answered


HTTPX_POOL_SECONDS = httpx.Limits().keepalive_expiry or 5.0  # httpx's default pool: 5 s
AIOHTTP_POOL_SECONDS = 15.0  # aiohttp's default keepalive_timeout


def test_servers_keep_idle_connections_far_longer_than_their_clients_pool_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that closes an idle connection while a client may still take it from its
    pool loses that client's next request. The servers' keep-alive leaves a minute of
    margin (which no lag of a busy process eats) over the gateway's pool and over the
    pools of common clients of the gateway."""
    import gateway.__main__ as gateway_main
    import shared.http_server
    import shared.logging
    import shared.service
    from services.intake.app import SPEC
    from shared.service import run_service

    runs: list[dict[str, Any]] = []

    def serve(app: Any, **overrides: Any) -> None:
        runs.append(shared.http_server.server_options(**overrides))

    monkeypatch.setattr(shared.service, "serve", serve)
    monkeypatch.setattr(shared.http_server, "serve", serve)
    monkeypatch.setattr(shared.logging, "configure_logging", lambda *args: None)
    run_service(SPEC)
    gateway_main.serve()
    service, gateway = (options.get("timeout_keep_alive", 5) for options in runs)

    assert service >= KEEPALIVE_EXPIRY + 60
    assert gateway >= max(HTTPX_POOL_SECONDS, AIOHTTP_POOL_SECONDS) + 60


def test_the_transport_round_trips_on_uvloop(uvicorn_service: UvicornThread) -> None:
    """The gateway's processes run uvloop (shared/http_server.py), whose transports are
    not asyncio's classes; the tests above run on asyncio's own loop."""

    async def round_trips() -> list[tuple[int, str]]:
        transport = HTTP1Transport()
        async with httpx.AsyncClient(base_url=uvicorn_service.url, transport=transport) as c:
            return [((r := await c.post("/x", content=b"{}")).status_code, r.text) for _ in "ab"]

    assert uvloop.run(round_trips()) == [(200, "1"), (200, "2")]
