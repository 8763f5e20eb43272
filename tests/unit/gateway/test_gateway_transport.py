"""The gateway's HTTP/1.1 transport to services, against a scripted server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.app import create_gateway_app
from gateway.transport import HTTP1Transport
from shared.auth import Role, verify_headers
from shared.settings import Settings

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


async def test_a_get_on_a_connection_closed_under_it_is_sent_again(
    scripted: Callable[..., Any],
) -> None:
    server = await scripted([OK, CLOSE, OK])
    async with client_for(server, HTTP1Transport()) as client:
        await client.get("/x")
        response = await client.get("/y")

    assert response.json() == {"ok": True}
    assert [(c, head.split(b" ")[1]) for c, head, _ in server.requests] == [
        (1, b"/x"),
        (1, b"/y"),
        (2, b"/y"),
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


async def test_the_gateway_signs_what_it_sends_over_the_wire(
    scripted: Callable[..., Any], settings: Settings
) -> None:
    server = await scripted([OK])
    wired = settings.model_copy(update={"intake_url": server.url})
    app = create_gateway_app(wired)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "unit1", "password": "unit1-secret"}
            )
            token = login.json()["access_token"]
            response = await client.get(
                "/api/v1/intake/tickets?mine=1", headers={"authorization": f"Bearer {token}"}
            )

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
