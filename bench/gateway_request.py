"""CPU of one proxied request's Python in the gateway, in process and without sockets: the
gateway's app as ``python -m gateway`` serves it (the server's protocol, shared/http_server.py
``HotlineProtocol``, its proxy-headers layer, the app's edge and hygiene layers, the token
check, signing, the transport, gateway/transport.py ``HTTP1Transport``), a registration
handed to the protocol's ``data_received`` as bench-e2e's clients send it, and the service
answering on a connection whose transport hands intake's answer back to it at the event
loop's next turn. What bench/gateway_proxy.py measures less its system calls (the poll
before reusing a connection included: these connections have no socket) and its noise.

    python bench/gateway_request.py [requests per round] [rounds] [tree]

``tree``: a checkout whose gateway to measure (default: this one), to compare two trees
(alternate them). Prints JSON: µs a request, each round, the best, the lowest tenth
(``p10``) and the median."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# intake's registration answer as its server writes it (bench/gateway_proxy.py's stub)
_ANSWER = json.dumps(
    {
        "ticket_id": "TJ20260115000123",
        "status": "registered",
        "channel": "phone",
        "type": "complaint",
        "urgency": "general",
        "matter_code": "M001",
        "district": "120101",
        "district_name": "和平区",
        "address": "和平区南京路某小区",
        "content": "昨天晚上和平区南京路某小区噪音扰民，3号楼2单元楼下施工，22点10分左右很吵，"
        "噪音问题一直没有解决，影响周边居民生活，请尽快处理。",
        "requester_name": "王*",
        "requester_phone": "139****5678",
        "anonymous": False,
        "flagged": False,
        "registered_at": "2026-01-15T08:00:00Z",
    },
    ensure_ascii=False,
).encode()
_RESPONSE = (
    b"HTTP/1.1 201 Created\r\ndate: Thu, 15 Jan 2026 08:00:00 GMT\r\ncontent-length: %d\r\n"
    b"content-type: application/json\r\nx-request-id: 0123456789abcdef0123456789abcdef\r\n"
    b"\r\n%s" % (len(_ANSWER), _ANSWER)
)
_BODY = json.dumps(
    {
        "channel": "phone",
        "type": "complaint",
        "matter_code": "M001",
        "district": "120101",
        "address": "和平区南京路某小区",
        "content": "昨天晚上和平区南京路某小区噪音扰民，3号楼2单元楼下施工，22点10分左右很吵，"
        "噪音问题一直没有解决，影响周边居民生活，请尽快处理。",
        "requester": {"name": "王丽", "phone": "13912345678"},
    },
    ensure_ascii=False,
).encode()


class _Client:
    """The client's side of the gateway's connection: keeps the last write, counts them."""

    writes = 0
    last = b""
    closed = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.last = data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


class _Service:
    """The service's side of a pooled connection: each request written is answered at the
    loop's next turn, as intake's answer arriving would be."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.closing = False
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.protocol.data_received, _RESPONSE)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _request(method: bytes, target: bytes, head: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in [*head, (b"content-length", b"%d" % len(body))]:
        lines += (name, b": ", value, b"\r\n")
    return b"".join([*lines, b"\r\n", body])


async def _answer(protocol: Any, client: _Client, request: bytes) -> bytes:
    written = client.writes
    protocol.data_received(request)
    while client.writes == written:
        await asyncio.sleep(0)
    return client.last


async def _measure(per_round: int, rounds: int, work: str) -> list[float]:
    import uvicorn

    from gateway import transport as gateway_transport
    from gateway.app import create_gateway_app
    from shared import http_server
    from shared.settings import Settings

    async def connect(self: Any, origin: Any, timeout: Any) -> Any:
        conn = gateway_transport._Connection(asyncio.get_running_loop())
        conn.connection_made(_Service(conn))  # type: ignore[arg-type]
        return conn

    gateway_transport.HTTP1Transport._connect = connect  # type: ignore[method-assign]
    settings = Settings(
        env="test",
        db_url=f"sqlite+aiosqlite:///{work}/gateway.db",
        intake_url="http://127.0.0.1:8001",
        log_level="WARNING",
    )
    app = create_gateway_app(settings)
    async with app.router.lifespan_context(app):
        config = uvicorn.Config(app, **http_server.server_options(proxy_headers=True))
        config.load()
        http_server.lean_proxy_headers(config)
        state = http_server.SweptServerState()
        state.default_headers = [(b"date", b"Sun, 06 Dec 2026 08:00:00 GMT")]
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop()
        )
        client = _Client()
        protocol.connection_made(client)  # type: ignore[arg-type]
        from tests.integration.conftest import PASSWORD

        login = json.dumps({"username": "operator", "password": PASSWORD}).encode()
        head = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
        answer = await _answer(
            protocol, client, _request(b"POST", b"/api/v1/auth/login", head, login)
        )
        token = json.loads(answer.partition(b"\r\n\r\n")[2])["access_token"].encode()
        # bench/http_load.py KeepAliveConnection.post, as bench-e2e's clients send it
        request = _request(
            b"POST",
            b"/api/v1/intake/tickets",
            [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", b"Bearer " + token),
                (b"content-type", b"application/json"),
            ],
            _BODY,
        )
        first = await _answer(protocol, client, request)
        assert first.startswith(b"HTTP/1.1 201 "), first[:200]

        async def round_of(n: int) -> float:
            began = time.process_time()
            for _ in range(n):
                await _answer(protocol, client, request)
            return 1e6 * (time.process_time() - began) / n

        await round_of(per_round)  # warm-up
        rates = [round(await round_of(per_round), 2) for _ in range(rounds)]
        assert client.last.startswith(b"HTTP/1.1 201 ") and not client.closed
        protocol.connection_lost(None)
        return rates


def main() -> None:
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
    sys.path.insert(0, str(tree))
    for name in [n for n in os.environ if n.startswith("HOTLINE_")]:
        del os.environ[name]
    import logging

    import uvloop

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="gwreq") as work:
        rates = uvloop.run(_measure(per_round, rounds, work))
    print(
        json.dumps(
            {
                "tree": str(tree),
                "us_per_request": rates,
                "best": min(rates),
                # the host's other work only ever adds: the lowest tenth of many short
                # rounds is the steadiest figure on a shared machine
                "p10": round(statistics.quantiles(rates, n=10)[0], 2),
                "median": round(statistics.median(rates), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
