"""How every process here serves HTTP: the FastAPI options of its app and the uvicorn server
(httptools on uvloop, no access log, a long keep-alive), with two changes to uvicorn's
protocol (``HotlineProtocol``):

- A response's head goes out with its body. uvicorn writes the status line and headers when
  the app sends ``http.response.start`` and the body when it sends ``http.response.body``:
  two writes, two system calls and segments, and the client (a user's client reading the
  gateway, the gateway reading a service) reads twice. The head of a response with a
  Content-Length is kept until its body comes, whole, in the next message (the app sends it
  right after: nothing waits), then both go in one write. Anything else goes as uvicorn
  sends it, the head first: a streamed or HEAD response, a body in parts. An app that fails
  between head and body closes the connection without the head (before: with it).
  bench/http_server.py, A B B A twice: over loopback TCP (the gateway's clients) the
  server's CPU 27.8-28.4 -> 25.3-25.6 µs a request and the client's 19.8-20.4 -> 19.0-19.3;
  over a Unix socket (the gateway's services) the client's -0.5 to -1.7 µs, the server's
  about level. An earlier try (session 16) sent what one event-loop turn wrote as one
  write, each response waiting for the loop's next turn: its ``call_soon`` and Python-level
  transport wrapper ate the saving.
- An idle keep-alive connection is closed by the server's once-a-second sweep, not a timer
  per response (see ``HotlineProtocol``).

The response's head is made here (``_HeadWithBody._head_of``: uvicorn's code), its header
names and values checked once each, joined, instead of by two regex searches a header:
bench/http_head.py 4.25-4.60 -> 3.94-4.00 µs a response (A B B A A B).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import socket
import stat
import sys
from functools import partial
from typing import Any

import uvicorn
from fastapi.telemetry import TelemetryConfig
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from shared.aio import wait_set

log = logging.getLogger("hotline.http")


# How long a server here (each service, the gateway) keeps an idle keep-alive connection,
# instead of uvicorn's 5 s. A client that sends its next request on a pooled connection just
# as the server closes it loses the request with the connection ("closed the connection
# without answering"), so a server must keep idle connections longer than its clients pool
# them: the gateway's pool 4 s (gateway/proxy.py KEEPALIVE_EXPIRY), httpx 5 s, aiohttp 15 s,
# a load balancer in front of the gateway about 60 s. 5 s was no margin at all: the server's
# count starts when it sends a response, the client's only when it has read it.
KEEPALIVE_SECONDS = 75

# FastAPI's own OpenTelemetry instrumentation, off: the platform's telemetry is its own
# (shared/metrics.py; trace ids in shared/logging.py) and no OpenTelemetry provider is
# configured, yet left on FastAPI asks OpenTelemetry's global providers on every request
# whether one has been (~4.5 µs a request, environment lookups included).
NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


# Young objects the collector lets pile up before it looks for cycles (CPython: 700). A
# request, an event batch or a statement makes and drops thousands of containers, freed
# by reference counting as they go; at 700 the collector ran ~700 times in 8,000 tickets
# in intake alone and took 3-5 % of every process's CPU (5 % of intake's) in bench-e2e. At
# 20,000: 2 runs in intake, 0.02 s instead of 0.52 s. Cycles are still collected, in
# bounded memory: the older generations keep CPython's ratios (a full pass every 100
# young ones).
YOUNG_COLLECTION_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Take what a process built at start (the app, its routes and models, dictionaries,
    catalogs) out of the garbage collector's reach: a full collection walks every tracked
    object, and under load the oldest generation's collections over a heap of startup
    objects that never die paused the event loop for every request waiting on it. From
    then on the collector looks for cycles every ``YOUNG_COLLECTION_THRESHOLD`` young
    objects instead of every 700."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


class _HeadWithBody(RequestResponseCycle):
    """uvicorn's request-response cycle, a whole response's head written with its body: the
    head uvicorn makes of ``http.response.start`` (a Content-Length given) is kept, and the
    body, when it comes whole in one ``http.response.body``, goes out after it in one write.
    Anything else (a streamed or HEAD response, a body in parts, one of another length, a
    connection whose writing is paused) goes as uvicorn sends it, the head first."""

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        head = self._head
        if head is None:
            if (
                self.response_started
                or message["type"] != "http.response.start"
                or self.access_log
                or self.disconnected
                or self.flow.write_paused
            ):
                await super().send(message)
                return
            head = self._head_of(message)
            if self.chunked_encoding is False and self.scope["method"] != "HEAD":
                self._head = head
            else:
                self.transport.write(head)
            return
        self._head = None
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and not self.flow.write_paused
            and not self.disconnected
        ):
            body = message.get("body", b"")
            if len(body) == self.expected_content_length:
                # uvicorn's own steps for a whole body, its head before it
                self.transport.write(head + body)
                self.expected_content_length = 0
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
                return
        self.transport.write(head)
        await super().send(message)

    def _head_of(self, message: Any) -> bytes:
        """The head uvicorn writes for ``http.response.start`` (``RequestResponseCycle.send``
        without its access log), its checks of the header names and values made once over
        all the names joined and once over all the values instead of two regex searches a
        header: each pattern looks for one character, so a join holds one exactly when one
        of its parts does."""
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        headers = self.default_headers + list(message.get("headers", []))
        if HEADER_RE.search(b"".join([name for name, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend((name, b": ", value, b"\r\n"))
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):  # neither content-length nor transfer-encoding given
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)


class SweptServerState(ServerState):
    """The state of a server (``Server``) that closes its idle keep-alive connections itself,
    once a second (``Server.close_idle_connections``)."""


class HotlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with two changes:

    - each request's cycle is a ``_HeadWithBody``;
    - an idle keep-alive connection is closed by its server's once-a-second sweep (``Server``)
      rather than by a timer of its own: uvicorn armed one after every response and
      cancelled it at the next request's first bytes (~1.6-2 µs a request on uvloop). It
      closes ``timeout_keep_alive`` seconds after its last response, up to a second later.
      Under a server that does not sweep, uvicorn's timer it is."""

    idle_since: float | None = None  # the loop's time of the last response, while idle

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if type(cycle) is RequestResponseCycle:
            # the same object and state (the protocol holds it as its cycle), with the
            # subclass's send: the task below has not looked ``send`` up yet
            cycle.__class__ = _HeadWithBody
        super()._start_asgi_task(cycle, app)

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None
        super()._unset_keepalive_if_required()

    def on_response_complete(self) -> None:
        if not isinstance(self.server_state, SweptServerState):
            super().on_response_complete()
            return
        # uvicorn's, but for the timer
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_since = self.loop.time()


def server_options(**overrides: Any) -> dict[str, Any]:
    """uvicorn's settings for every process here (``uvicorn.run`` / ``uvicorn.Config``)."""
    return {
        "loop": "uvloop",
        "http": HotlineProtocol,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEPALIVE_SECONDS,  # longer than clients pool idle connections
        **overrides,
    }


# Who may connect to a service's Unix socket (connecting takes write permission on its file):
# the service's user and group (the gateway runs as one of them), nobody else. A directory
# for it that does not exist yet is made, open to the same group only.
SOCKET_MODE = 0o660
SOCKET_DIRECTORY_MODE = 0o750


class Server(uvicorn.Server):
    """uvicorn's server, woken once a second instead of ten times: its main loop only
    refreshes the ``date`` header (one-second resolution) and looks whether to stop, and
    setting ``should_exit`` (a signal, a test, the embedded runner) wakes it at once. Ten
    wake-ups a second were most of an idle process's CPU after its own polls.

    With ``unix_socket`` (a service's ``HOTLINE_<SERVICE>_UDS``) it serves there too, beside
    its port: the gateway's requests come through the socket, anything else (health checks,
    metrics, channels' calls to intake) still through the port."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None
    _exit = False
    _bound: tuple[int, int] | None = None  # the socket file made here: (device, inode)

    def __init__(self, config: uvicorn.Config, *, unix_socket: str | None = None) -> None:
        super().__init__(config)
        self.unix_socket = unix_socket
        self.server_state = SweptServerState()  # its connections' keep-alive: main_loop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.unix_socket is None:
            return
        path = self.unix_socket
        try:
            _refuse_a_socket_in_use(path)
            os.makedirs(os.path.dirname(path), mode=SOCKET_DIRECTORY_MODE, exist_ok=True)
            server = await asyncio.get_running_loop().create_unix_server(
                partial(  # uvicorn's own protocol factory (Server.startup), typed loosely
                    self.config.http_protocol_class,  # type: ignore[call-arg]
                    config=self.config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                ),
                path=path,
                backlog=self.config.backlog,
            )
        except OSError as exc:
            log.error("cannot serve on the Unix socket %s: %s", path, exc)
            self.started = False
            for running in self.servers:
                running.close()
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        os.chmod(path, SOCKET_MODE)  # whatever the umask made it
        made = os.stat(path)
        self._bound = (made.st_dev, made.st_ino)
        self.servers.append(server)
        log.info("serving on the Unix socket %s too", path)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        """As ``uvicorn --uds`` does when it stops, but only the file this server made:
        not one a later instance has bound meanwhile."""
        if self.unix_socket is None or self._bound is None:
            return
        try:
            found = os.stat(self.unix_socket)
            if (found.st_dev, found.st_ino) == self._bound:
                os.unlink(self.unix_socket)
        except FileNotFoundError:
            pass

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        if value and self._loop is not None and self._wake is not None:
            # from a signal handler too: the loop may be waiting in its selector
            self._loop.call_soon_threadsafe(self._wake.set)

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # uvicorn's tick count: a second is ten
            await wait_set(self._wake, 1.0)
            self.close_idle_connections(self._loop.time())
            should_exit = await self.on_tick(counter)

    def close_idle_connections(self, now: float) -> None:
        """Close the keep-alive connections idle ``timeout_keep_alive`` seconds by ``now``
        (the loop's time), as each one's own timer did (``HotlineProtocol``)."""
        limit = self.config.timeout_keep_alive
        for connection in list(self.server_state.connections):
            if not isinstance(connection, HotlineProtocol):
                continue
            idle_since = connection.idle_since
            if idle_since is not None and now - idle_since >= limit:
                connection.timeout_keep_alive_handler()


def _refuse_a_socket_in_use(path: str) -> None:
    """A TCP port another process listens on cannot be bound; a Unix socket's file would be
    replaced (asyncio removes a socket file in the way), the other process silently cut off
    from its clients. So: ``EADDRINUSE`` if a process answers there; a file no process
    answers on is what a stopped one left, and is replaced."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not a socket: binding fails, saying so
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return
    raise OSError(errno.EADDRINUSE, "another process is serving on it")


def serve(app: Any, *, unix_socket: str | None = None, **overrides: Any) -> None:
    """``uvicorn.run(app, **server_options(**overrides))`` on our ``Server``: serve until
    stopped; exit with uvicorn's start-up failure status when the app could not start.
    ``unix_socket``: a path to serve on too (``Server``)."""
    server = Server(uvicorn.Config(app, **server_options(**overrides)), unix_socket=unix_socket)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
