"""A lean HTTP/1.1 keep-alive transport for the gateway's service clients.

httpx's default transport (httpcore + h11 + anyio) costs about 370 µs of CPU per request on
our hardware, most of the gateway's budget; this one parses with httptools (as uvicorn
does) and costs a fraction of that. It does only what the gateway needs: plain HTTP/1.1 to
a known service, whole bodies (JSON), pooled keep-alive connections.
"""

from __future__ import annotations

import asyncio
import select
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping
from typing import NamedTuple, cast

import httptools
import httpx

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# A request extension: ``True`` marks a request that may be sent twice although its method
# is not idempotent, because the service makes it once per Idempotency-Key (gateway/proxy.py)
REPLAYABLE = "hotline.replayable"
_LENGTH_ALWAYS = frozenset({"POST", "PUT", "PATCH"})  # httpx sends Content-Length: 0


class _ResponseReader:
    """httptools callbacks collecting a connection's responses, one at a time (``start``):
    its parser goes on from one response to the next (a parser made per response, its
    callbacks looked up, cost ~1 µs)."""

    __slots__ = (
        "headers",
        "body",
        "headers_complete",
        "complete",
        "received",
        "keep_alive",
        "parser",
        "skip_body",
    )

    def __init__(self) -> None:
        self.start(skip_body=False)
        self.complete = True  # none asked for yet
        self.parser = httptools.HttpResponseParser(self)

    def start(self, skip_body: bool) -> None:
        """Ready for the next response."""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headers_complete = False
        self.complete = False
        self.received = False  # a byte of it
        self.keep_alive = False
        self.skip_body = skip_body

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_complete = True
        # only meaningful now: llhttp forgets it once the message is complete
        self.keep_alive = self.parser.should_keep_alive()
        if self.skip_body:  # a HEAD response announces a body it does not send
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def ends_at_close(self) -> bool:
        """A response framed by neither Content-Length nor chunking ends when the
        connection closes."""
        framing = {b"content-length", b"transfer-encoding"}
        return self.headers_complete and not any(n.lower() in framing for n, _ in self.headers)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, as the event loop's protocol: what the service sends is
    parsed as it arrives, and the request waiting for it is woken once, when its response
    is whole (no stream buffer, no task wake-up per read, no timer context per request)."""

    __slots__ = (
        "loop",
        "transport",
        "idle_since",
        "deadline",
        "poller",
        "lost",
        "_response",
        "_answered",
        "_drained",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # the loop it runs on, held: asking for the running loop per request costs a getpid
        # system call on Python 3.11 (two a request)
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.deadline = 0.0  # the event loop's time by which the response must be whole
        # the socket's readability, asked before each reuse (``readable``); made once
        self.poller: select.poll | None = None
        # the connection has ended, or carried what no request asked for: not reusable
        self.lost = False
        self._response: _ResponseReader | None = None
        # the request in flight: done once its response is whole or cannot be
        self._answered: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones
        self.transport = stream = cast(asyncio.Transport, transport)
        # paused whenever the socket did not take all of a request: sending waits for it
        stream.set_write_buffer_limits(high=0)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.poller = select.poll()
            self.poller.register(sock.fileno(), select.POLLIN)

    def usable(self, now: float, expiry: float) -> bool:
        return (
            now - self.idle_since < expiry
            and not self.lost
            and self.transport is not None
            and not self.transport.is_closing()
            and not self.readable()
        )

    def readable(self) -> bool:
        """Something to read on an idle connection: the service has closed it (or sent what
        no request asked for). The socket says so as soon as the service's FIN arrives; the
        event loop only when it next polls, which on a busy process may be after this
        connection has carried a request into the closed socket."""
        return self.poller is not None and bool(self.poller.poll(0))

    def expect(self, skip_body: bool) -> asyncio.Future[None]:
        """Get ready for the response to the request about to be written."""
        response = self._response
        if response is None or response.skip_body:  # after a HEAD its parser awaits a body
            response = self._response = _ResponseReader()
        response.start(skip_body)
        self._answered = self.loop.create_future()
        return self._answered

    @property
    def response(self) -> _ResponseReader:
        assert self._response is not None
        return self._response

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None or response.complete:  # nothing asked for it
            self.lost = True
            return
        response.received = True
        try:
            response.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(httpx.RemoteProtocolError(str(exc)))
            return
        if response.complete:
            self._end(None)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)
        self.resume_writing()  # nothing more to send: the response tells what happened

    def _ended(self, exc: Exception | None) -> None:
        """The service closed the connection (or it broke): how the response in flight
        ends, if one is."""
        self.lost = True
        response = self._response
        if response is None or response.complete:
            return
        if not response.received:
            self._end(_NoResponse())
        elif exc is not None:
            self._end(httpx.ReadError(str(exc)))
        elif response.ends_at_close():
            self._end(None)
        else:
            self._end(httpx.RemoteProtocolError("the service closed the connection mid-response"))

    def _end(self, failure: Exception | None) -> None:
        answered = self._answered
        if answered is None or answered.done():
            return
        if failure is None:
            answered.set_result(None)
        else:
            answered.set_exception(failure)

    def time_out(self) -> None:
        self._end(httpx.ReadTimeout("waiting for the response"))

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    @property
    def writing_paused(self) -> bool:
        return self._drained is not None

    async def drained(self, timeout: float | None) -> None:
        """Once the socket has taken the whole request (or the connection has ended)."""
        if self._drained is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._drained
        except TimeoutError as exc:
            raise httpx.WriteTimeout("sending the request") from exc

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _NoResponse(Exception):
    """The connection closed before a single byte of the response arrived."""


class Answer(NamedTuple):
    """A service's response, as read off the wire."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class Origin(NamedTuple):
    """Where a service listens, and its ``Host`` header."""

    host: str
    port: int
    tls: bool
    netloc: bytes

    @classmethod
    def of(cls, url: httpx.URL) -> Origin:
        tls = url.scheme == "https"
        return cls(url.host, url.port or (443 if tls else 80), tls, url.netloc)


class _Slots:
    """At most ``limit`` requests in flight, those past it waiting their turn in order (an
    ``asyncio.Semaphore``'s contract) and a free slot taken without a coroutine: the
    semaphore's ``locked`` and ``acquire`` cost ~1 µs a request in Python."""

    __slots__ = ("free", "_waiting")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiting: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """A free slot taken now, if there is one no earlier request waits for."""
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return True
        return False

    async def wait(self, timeout: float | None) -> None:
        """The next slot freed, within ``timeout`` seconds (``TimeoutError``)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(timeout):
                await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed this slot just as it gave up: the next one's
            else:
                turn.cancel()  # release() passes it by
            raise

    def release(self) -> None:
        """The slot to the first request still waiting, or free."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


class HTTP1Transport(httpx.AsyncBaseTransport):
    """Keep-alive connections to one ``host:port``, or to the Unix socket ``uds`` (as
    httpx's ``AsyncHTTPTransport(uds=...)``: the URL then gives only the ``Host`` header),
    reused last-in first-out.

    ``keepalive_expiry`` stays far below the services' keep-alive (shared/http_server.py
    KEEPALIVE_SECONDS), so a service does not close a connection the gateway is about to
    reuse. If a reused connection closes without a byte of answer anyway, the request is
    sent once more on a fresh connection when that is safe: an idempotent method, or a
    request marked ``REPLAYABLE`` (the service makes it once per Idempotency-Key), as Go's
    net/http does. Any other request fails with ``RemoteProtocolError``: it may or may not
    have taken effect.

    The proxy calls ``send`` (no httpx request or response objects on its hot path); the
    service clients (health, OpenAPI, the timeline) go through httpx's interface.
    """

    def __init__(
        self,
        *,
        max_connections: int = 200,
        max_keepalive_connections: int = 100,
        keepalive_expiry: float = 4.0,
        uds: str | None = None,
    ) -> None:
        self.uds = uds
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._idle: deque[_Connection] = deque()
        self._slots = _Slots(max_connections)
        self._closed = False
        # the connections waiting for a response with a read timeout, and the one timer
        # that ends those past their deadline (a timer per request cost ~5 µs of its CPU)
        self._waiting: set[_Connection] = set()
        self._watch: asyncio.TimerHandle | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        payload = request_bytes(
            request.method, request.url.raw_path, request.headers.raw, await request.aread()
        )
        answer = await self._round_trip(
            Origin.of(request.url),
            request.method,
            payload,
            replayable=_replayable(request),
            timeouts=request.extensions.get("timeout", {}),
        )
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.content,
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    def send(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        replayable: bool,
        timeouts: Mapping[str, float | None],
    ) -> Awaitable[Answer]:
        """One request as httpx would send it: ``Host`` first, and a ``Content-Length``
        for a body (0 for an empty POST, PUT or PATCH). ``target``: path and query, encoded;
        ``replayable``: safe to send twice (see the class). The round trip to await (no
        coroutine of its own around it)."""
        head = [(b"Host", origin.netloc), *headers]
        if body or method in _LENGTH_ALWAYS:
            head.append((b"Content-Length", str(len(body)).encode()))
        payload = request_bytes(method, target, head, body)
        return self._round_trip(origin, method, payload, replayable=replayable, timeouts=timeouts)

    async def _round_trip(
        self,
        origin: Origin,
        method: str,
        payload: bytes,
        *,
        replayable: bool,
        timeouts: Mapping[str, float | None],
    ) -> Answer:
        if self._closed:
            raise httpx.ConnectError("transport closed")
        if not self._slots.take():  # only then can it wait (a timer per request costs)
            try:
                await self._slots.wait(timeouts.get("pool"))
            except TimeoutError as exc:
                raise httpx.PoolTimeout("no free connection") from exc
        try:
            conn = self._reusable()
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin, timeouts.get("connect"))
            try:
                return await self._exchange(conn, method, payload, timeouts)
            except _NoResponse as exc:
                if not (reused and replayable):
                    raise httpx.RemoteProtocolError(
                        "the service closed the connection without answering"
                    ) from exc
            conn = await self._connect(origin, timeouts.get("connect"))
            try:
                return await self._exchange(conn, method, payload, timeouts)
            except _NoResponse as exc:
                raise httpx.RemoteProtocolError(
                    "the service closed the connection without answering"
                ) from exc
        finally:
            self._slots.release()

    def _reusable(self) -> _Connection | None:
        """The most recently idle connection still fit to carry a request, if any (those
        found unfit are closed)."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now, self._expiry):
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        where = self.uds or f"{origin.host}:{origin.port}"
        loop = asyncio.get_running_loop()
        conn = _Connection(loop)
        try:
            async with asyncio.timeout(timeout):
                if self.uds:
                    await loop.create_unix_connection(
                        lambda: conn, self.uds, ssl=origin.tls or None
                    )
                else:
                    await loop.create_connection(
                        lambda: conn, origin.host, origin.port, ssl=origin.tls or None
                    )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {where}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{where}: {exc}") from exc
        return conn

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        payload: bytes,
        timeouts: Mapping[str, float | None],
    ) -> Answer:
        keep = False
        try:
            if conn.lost or conn.transport is None or conn.transport.is_closing():
                raise _NoResponse
            answered = conn.expect(skip_body=method == "HEAD")
            conn.transport.write(payload)
            if conn.writing_paused:  # the socket did not take it all
                await conn.drained(timeouts.get("write"))
            read_timeout = timeouts.get("read")
            if read_timeout is not None:
                self._wait(conn, read_timeout)
            try:
                await answered
            finally:
                self._waiting.discard(conn)
            response = conn.response
            keep = response.keep_alive and response.complete and not conn.lost
            return Answer(
                response.parser.get_status_code(), response.headers, b"".join(response.body)
            )
        finally:
            if keep and not self._closed and len(self._idle) < self._max_idle:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()

    def _wait(self, conn: _Connection, timeout: float) -> None:
        """Time ``conn``'s response out after ``timeout`` seconds: the watch's timer is
        set for the earliest deadline of those waiting, so under load it fires about once
        every read timeout, not once a request."""
        loop = conn.loop
        conn.deadline = loop.time() + timeout
        self._waiting.add(conn)
        if self._watch is None or conn.deadline < self._watch.when():
            if self._watch is not None:
                self._watch.cancel()
            self._watch = loop.call_at(conn.deadline, self._time_out_late_responses)

    def _time_out_late_responses(self) -> None:
        self._watch = None
        now = asyncio.get_running_loop().time()
        for conn in [c for c in self._waiting if c.deadline <= now]:
            self._waiting.discard(conn)
            conn.time_out()
        if self._waiting:
            earliest = min(c.deadline for c in self._waiting)
            self._watch = asyncio.get_running_loop().call_at(
                earliest, self._time_out_late_responses
            )

    async def aclose(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self._idle:
            self._idle.pop().close()


def _replayable(request: httpx.Request) -> bool:
    """Safe to send twice: the service cannot make it twice."""
    return request.method in _IDEMPOTENT or request.extensions.get(REPLAYABLE) is True


def request_bytes(
    method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """Request line, headers and body (the headers joined in C, not a header at a time)."""
    head = b"\r\n".join(map(b": ".join, headers))
    end = b"\r\n\r\n" if head else b"\r\n"
    return b"".join((method.encode(), b" ", target, b" HTTP/1.1\r\n", head, end, body))
