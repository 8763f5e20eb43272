"""A lean HTTP/1.1 load client: one keep-alive connection per worker, requests written
as prepared bytes, answers parsed by httptools (uvicorn's parser).

The benchmarks run the load generator on the machine they measure, so its CPU is taken
from the system under test: httpx spends ~2.6 ms of CPU per POST here, this client a
small fraction of that. It does only what a load generator needs: POST a JSON body, read
the status and body, reconnect when the server closes the connection between requests.
A connection lost while a request is in flight raises (a registration is not repeated
behind the caller's back).

The connection is an ``asyncio.Protocol`` feeding one parser for its life (llhttp reads
one answer after another on a kept-alive connection): no stream reader, no task wake-up
a read, no timer a request (one watchdog a connection aborts a request that waited past
the timeout). ``prepare`` turns a body into the request's bytes once, so a benchmark can
make them all before its measured window, as a load tool replays a recorded file."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httptools


class Response:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _Client(asyncio.Protocol):
    """One connection's protocol: the answer in flight and the parser reading it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.sent_at = 0.0
        self.keep_alive = False
        self.closed = False
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"unparseable answer: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("the server closed the connection mid-request"))

    def on_headers_complete(self) -> None:
        # only meaningful now: llhttp forgets it once the message is complete
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self._body = b"".join(self._body), []
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.parser.get_status_code(), body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class KeepAliveConnection:
    """One connection to ``base_url``, used by one worker at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 80
        self._head = "".join(
            f"{name}: {value}\r\n" for name, value in {"host": url.netloc, **headers}.items()
        )
        self._timeout = timeout
        self._client: _Client | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def prepare(self, path: str, json_body: Any) -> bytes:
        """The POST of ``json_body`` to ``path``, as the bytes ``send`` writes."""
        body = json.dumps(json_body, ensure_ascii=False).encode()
        return (
            f"POST {path} HTTP/1.1\r\n{self._head}content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def post(self, path: str, json_body: Any) -> Response:
        return await self.send(self.prepare(path, json_body))

    async def send(self, request: bytes) -> Response:
        """Write one prepared request and read its answer."""
        client = self._client
        if client is None or client.closed:
            client = await self._connect()
        assert client.transport is not None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client.waiter = waiter
        client.sent_at = time.monotonic()
        client.transport.write(request)
        try:
            answer = await waiter
        except BaseException:
            await self.close()
            raise
        if not client.keep_alive:
            await self.close()
        return answer

    async def _connect(self) -> _Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(_Client, self._host, self._port)
        self._client = client
        self._arm(loop)
        return client

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = loop.call_later(self._timeout / 4, self._watch, loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        client = self._client
        if client is None or client.closed:
            self._watchdog = None
            return
        if client.waiter is not None and time.monotonic() - client.sent_at > self._timeout:
            client._fail(TimeoutError(f"no answer within {self._timeout} s"))
            client.abort()
            self._watchdog = None
            return
        self._arm(loop)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        client, self._client = self._client, None
        if client is not None and client.transport is not None and not client.closed:
            client.closed = True
            client.transport.close()
