"""How every process here serves HTTP: the FastAPI options of its app and the uvicorn server
(httptools on uvloop, no access log, a long keep-alive), with three changes to uvicorn's
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
- A leaner request path (``HotlineProtocol.on_headers_complete``, ``on_body``,
  ``_HeadWithBody.receive``): the cycle made a ``_HeadWithBody`` at once, a request target's
  path, raw path and query string taken as made for it before, a body that came whole handed
  over without uvicorn's ``receive`` and its wait, the server's own headers checked and
  encoded once per list. bench/http_parse.py (a request's life in the server, in process),
  A B B A twice: 17.7-18.2 -> 14.6-15.0 µs a request. These are copies of uvicorn's code
  (0.55), as ``_head_of`` is: a test reads and answers 13 kinds of request (pipelined,
  chunked, percent-encoded, HTTP/1.0, 100-continue, HEAD, bad ones) as uvicorn's own
  protocol does, so an upgrade that changes uvicorn's reading fails it rather than drifting.

The gateway's proxy-headers layer is ``ForwardedHeaders``: uvicorn's, without a coroutine of
its own (services have none).

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
import urllib.parse
from functools import partial
from typing import Any

import httptools
import uvicorn
from fastapi.telemetry import TelemetryConfig
from uvicorn.config import STARTUP_FAILURE
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
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

    async def receive(self) -> Any:
        if (
            self.more_body
            or self.waiting_for_100_continue
            or self.disconnected
            or self.response_complete
            or not self.message_event.is_set()
        ):
            return await super().receive()
        # the whole body is in (``on_message_complete``): uvicorn's steps, nothing to wait for
        self.flow.resume_reading()
        self.message_event.clear()
        message = {"type": "http.request", "body": bytes(self.body), "more_body": False}
        self.body = bytearray()
        return message

    def _head_of(self, message: Any) -> bytes:
        """The head uvicorn writes for ``http.response.start`` (``RequestResponseCycle.send``
        without its access log), its checks of the header names and values made once over
        all the names joined and once over all the values instead of two regex searches a
        header: each pattern looks for one character, so a join holds one exactly when one
        of its parts does."""
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        headers = list(message.get("headers", []))
        defaults = _plain_defaults(self.default_headers)
        if defaults is None:  # to be checked and read as the app's are
            headers = self.default_headers + headers
        if HEADER_RE.search(b"".join([name for name, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        if defaults:
            content.append(defaults)
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


# The server's own headers of a response (``date``, ``server``: a list uvicorn's server makes
# anew each second) as they go out, made once per list: by its id, with the list (kept
# alive, so its id is not another's). None for a list to be handled as the app's headers are
# (a name or value uvicorn refuses, or one that frames the response).
_DEFAULTS_MADE: dict[int, tuple[list[tuple[bytes, bytes]], bytes | None]] = {}
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def _plain_defaults(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    made = _DEFAULTS_MADE.get(id(headers))
    if made is not None and made[0] is headers:
        return made[1]
    names = [name.lower() for name, _ in headers]
    plain: bytes | None = None
    if not (
        HEADER_RE.search(b"".join(names))
        or HEADER_VALUE_RE.search(b"".join([value for _, value in headers]))
        or _FRAMING.intersection(names)
    ):
        plain = b"".join(
            [b"%s: %s\r\n" % (name, value) for name, (_, value) in zip(names, headers, strict=True)]
        )
    if len(_DEFAULTS_MADE) >= 8:  # one list a second a server: the last few are enough
        _DEFAULTS_MADE.clear()
    _DEFAULTS_MADE[id(headers)] = (headers, plain)
    return plain


class SweptServerState(ServerState):
    """The state of a server (``Server``) that closes its idle keep-alive connections itself,
    once a second (``Server.close_idle_connections``)."""


# Request targets' path, raw path and query string as a server's protocol made them, by the
# target's bytes, per root path (``HotlineProtocol.on_headers_complete``): a process serves
# the same few paths all day; one naming a record (a ticket's number) is kept until the
# dictionary is full, then they all start over.
_TARGETS: dict[str, dict[bytes, tuple[str, bytes, bytes]]] = {}
_TARGETS_KEPT = 1024


class HotlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with three changes:

    - each request's cycle is a ``_HeadWithBody``;
    - the request path's own steps leaner (``on_headers_complete``, ``on_body``; see the
      module's notes);
    - an idle keep-alive connection is closed by its server's once-a-second sweep (``Server``)
      rather than by a timer of its own: uvicorn armed one after every response and
      cancelled it at the next request's first bytes (~1.6-2 µs a request on uvloop). It
      closes ``timeout_keep_alive`` seconds after its last response, up to a second later.
      Under a server that does not sweep, uvicorn's timer it is."""

    idle_since: float | None = None  # the loop's time of the last response, while idle

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._targets = _TARGETS.setdefault(self.root_path, {})

    def on_headers_complete(self) -> None:
        """uvicorn's, with the request's cycle made a ``_HeadWithBody`` at once and the
        scope's path, raw path and query string of a request target seen before (the same
        few, request after request) taken as they were made for it."""
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        target = self._targets.get(self.url)
        if target is None:
            target = self._target_of(self.url)
        scope["path"], scope["raw_path"], scope["query_string"] = target

        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            message = "Exceeded concurrency limit."
            self.logger.warning(message)
        else:
            app = self.app

        existing_cycle = self.cycle
        self.cycle = cycle = _HeadWithBody(
            scope,
            self.transport,
            self.flow,
            self.logger,
            self.access_logger,
            self.access_log,
            self.server_state.default_headers,
            asyncio.Event(),
            self.expect_100_continue,
            http_version != "1.0" and parser.should_keep_alive(),
            self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # pipelined: queued
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def _target_of(self, url: bytes) -> tuple[str, bytes, bytes]:
        """uvicorn's path, raw path and query string of a request target, kept for the next
        request to the same target (``on_headers_complete``)."""
        parsed_url = httptools.parse_url(url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        target = (
            self.root_path + path,
            self.root_path.encode("ascii") + raw_path,
            parsed_url.query or b"",
        )
        if len(self._targets) >= _TARGETS_KEPT:
            self._targets.clear()
        self._targets[url] = target
        return target

    def on_body(self, body: bytes) -> None:
        # uvicorn's, the cycle's state looked at before the parser's
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if type(cycle) is RequestResponseCycle:
            # the same object and state (the protocol holds it as its cycle), with the
            # subclass's send: the task below has not looked ``send`` up yet
            cycle.__class__ = _HeadWithBody
        super()._start_asgi_task(cycle, app)

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None
        if self.timeout_keep_alive_task is not None:  # under a server that does not sweep
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


class ForwardedHeaders(ProxyHeadersMiddleware):
    """uvicorn's proxy-headers layer (the gateway's: ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` from a trusted proxy rewrite the scope's client and scheme), its
    work done before the app's coroutine is made and that coroutine handed back for the
    server to await, not awaited in a coroutine of its own: a coroutine and an await a
    request less. The same code as uvicorn's ``__call__`` (uvicorn 0.55) up to its await."""

    def __call__(  # type: ignore[override]
        self, scope: Any, receive: Any, send: Any
    ) -> Any:
        if scope["type"] == "lifespan":
            return self.app(scope, receive, send)

        client_addr = scope.get("client")
        client_host = client_addr[0] if client_addr else None

        if client_host in self.trusted_hosts:
            x_forwarded_proto_value: bytes | None = None
            x_forwarded_for_values: list[bytes] = []
            for name, value in scope["headers"]:
                if name == b"x-forwarded-proto":
                    x_forwarded_proto_value = value
                elif name == b"x-forwarded-for":
                    x_forwarded_for_values.append(value)

            if x_forwarded_proto_value is not None:
                x_forwarded_proto = x_forwarded_proto_value.decode("latin1").strip()

                if x_forwarded_proto in {"http", "https", "ws", "wss"}:
                    if scope["type"] == "websocket":
                        scope["scheme"] = x_forwarded_proto.replace("http", "ws")
                    else:
                        scope["scheme"] = x_forwarded_proto

            if x_forwarded_for_values:
                x_forwarded_for = b", ".join(x_forwarded_for_values).decode("latin1")
                host, port = self.trusted_hosts.get_trusted_client_address(x_forwarded_for)
                if host:  # as uvicorn: an empty X-Forwarded-For leaves the client as it is
                    scope["client"] = (host, port)

        return self.app(scope, receive, send)


def lean_proxy_headers(config: uvicorn.Config) -> None:
    """A loaded config's app behind uvicorn's proxy-headers layer put behind
    ``ForwardedHeaders`` instead, with the same trusted hosts (``Server.startup``)."""
    layer = config.loaded_app
    if type(layer) is ProxyHeadersMiddleware:
        lean = ForwardedHeaders.__new__(ForwardedHeaders)
        lean.app, lean.trusted_hosts = layer.app, layer.trusted_hosts
        config.loaded_app = lean


def server_options(**overrides: Any) -> dict[str, Any]:
    """uvicorn's settings for every process here (``uvicorn.run`` / ``uvicorn.Config``)."""
    return {
        "loop": "uvloop",
        "http": HotlineProtocol,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEPALIVE_SECONDS,  # longer than clients pool idle connections
        # no ``server: uvicorn`` on every response: nothing reads it (a client of the gateway
        # learns nothing it needs from it), and each reader parses it (the gateway reading
        # a service: one parser callback a request)
        "server_header": False,
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
        lean_proxy_headers(self.config)  # before any connection's protocol takes the app
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
