"""How every process here serves HTTP: the FastAPI options of its app and the uvicorn server
(httptools on uvloop, no access log, a long keep-alive), with one change to uvicorn.

uvicorn writes a response's status line and headers and then its body as two writes, so two
``send`` system calls and two TCP segments, and the client (the gateway, for a service) wakes
and reads twice. ``CoalescingHttpToolsProtocol`` sends the writes one turn of the event loop
makes as one: head and body of a whole response go out together (~2-3 µs less CPU per response
on each side). A streamed response's chunks, made in later turns, go out as they come.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.telemetry import TelemetryConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class _CoalescingTransport:
    """A connection's transport whose writes of one event-loop turn go out as one write."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            if not self._transport.is_closing():  # lost meanwhile: nobody to send it to
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()  # what the response wrote goes before the close
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, …
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through ``_CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


def server_options(**overrides: Any) -> dict[str, Any]:
    """uvicorn's settings for every process here (``uvicorn.run`` / ``uvicorn.Config``)."""
    return {
        "loop": "uvloop",
        "http": CoalescingHttpToolsProtocol,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEPALIVE_SECONDS,  # longer than clients pool idle connections
        **overrides,
    }
