"""CPU of one request's life in the HTTP server every process here runs (shared/http_server.py
``HotlineProtocol``), in process and without a socket: the request's bytes handed to the
protocol's ``data_received`` as a socket would hand them (parse, scope, the request's task),
the task run by a uvloop loop (a plain ASGI app receiving the body and answering a fixed 201
as intake's registration does), the response written to a transport that keeps nothing, the
connection ready for the next request. So what is measured is the server's own Python (and
httptools' C) a request, as a sampler of intake or the gateway sees it under its
``data_received`` and the cycle's ``receive``/``send``.

Two requests: ``intake`` as the gateway sends a registration to intake (its transport's
header order, the signed caller headers), ``gateway`` as the load generator sends it to the
gateway (host, authorization, content type and length).

    python bench/http_parse.py [requests per round] [rounds] [tree]

``tree``: a checkout whose shared/http_server.py to measure (default: this one), to compare
two trees (alternate them). Prints JSON: µs a request for each request, each round, the best
and the median."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_BODY = (
    '{"channel":"phone","type":"complaint","matter_code":"M001","district":"120101",'
    '"address":"和平区南京路某小区","content":"昨天晚上和平区南京路某小区噪音扰民，3号楼2单元'
    '楼下施工，22点10分左右很吵，噪音问题一直没有解决，影响周边居民生活，请尽快处理。",'
    '"requester":{"name":"王丽","phone":"13912345678"}}'
).encode()
_ANSWER = b'{"ticket_id":"TJ20260115000123","status":"registered"}' + b" " * 600


def _request(head: list[tuple[bytes, bytes]], target: bytes) -> bytes:
    lines = [b"POST ", target, b" HTTP/1.1\r\n"]
    for name, value in [*head, (b"Content-Length", str(len(_BODY)).encode())]:
        lines += (name, b": ", value, b"\r\n")
    return b"".join([*lines, b"\r\n", _BODY])


# each with its server's proxy-headers setting: a service has none (shared/service.py), the
# gateway uvicorn's (its clients may come through a proxy)
REQUESTS = {
    # gateway/transport.py HTTP1Transport.send: Host first, the forwarded headers, the trace
    # id, the signed caller (shared/auth.py sign_headers), the length last
    "intake": _request(
        [
            (b"Host", b"127.0.0.1:8001"),
            (b"content-type", b"application/json"),
            (b"idempotency-key", b"6f1c1a0e-6d8e-4f53-9e0b-5b0c8b1f2a3d"),
            (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
            (b"x-hotline-caller", b'{"sub":"op1","role":"operator","name":"op"}'),
            (b"x-hotline-timestamp", b"1765000000"),
            (b"x-hotline-nonce", b"Jx3kR0b2a9Qm7Zt1Lw8yUg"),
            (b"x-hotline-body-digest", b"d" * 64),
            (b"x-hotline-signature", b"5" * 64),
        ],
        b"/tickets",
    ),
    # bench/http_load.py KeepAliveConnection.post, as bench-e2e's clients send
    "gateway": _request(
        [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer " + b"e" * 180),
            (b"content-type", b"application/json"),
        ],
        b"/api/v1/intake/tickets",
    ),
}


class _Transport:
    """Keeps nothing; counts the writes."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8001), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


# intake's registration answer: its head (as the app sends it) and its body
_START = {
    "type": "http.response.start",
    "status": 201,
    "headers": [
        (b"content-length", b"%d" % len(_ANSWER)),
        (b"content-type", b"application/json"),
        (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    ],
}
_END = {"type": "http.response.body", "body": _ANSWER}


async def _round(protocol: Any, transport: _Transport, request: bytes, n: int) -> float:
    """µs of CPU a request, ``n`` requests one after the other on one connection."""
    began = time.process_time()
    for _ in range(n):
        written = transport.writes
        protocol.data_received(request)
        while transport.writes == written:  # the response written: the request is done
            await asyncio.sleep(0)
        assert not transport.closed
    return 1e6 * (time.process_time() - began) / n


async def _measure(per_round: int, rounds: int) -> dict[str, list[float]]:
    import uvicorn

    from shared import http_server
    from shared.asgi import read_body

    async def app(scope: Any, receive: Any, send: Any) -> None:  # reads the body, answers
        await read_body(receive)
        await send(_START)
        await send(_END)

    state = getattr(http_server, "SweptServerState", None)
    server_state = state() if state is not None else uvicorn.server.ServerState()
    server_state.default_headers = [
        (b"date", b"Sun, 06 Dec 2026 08:00:00 GMT"),
        (b"server", b"uvicorn"),
    ]
    loop = asyncio.get_running_loop()
    found: dict[str, list[float]] = {}
    for name, request in REQUESTS.items():
        config = uvicorn.Config(app, **http_server.server_options(proxy_headers=name == "gateway"))
        config.load()
        lean = getattr(http_server, "lean_proxy_headers", None)
        if lean is not None:
            lean(config)  # as the server does at start
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server_state, app_state={}, _loop=loop
        )
        transport = _Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]

        await _round(protocol, transport, request, per_round)  # warm-up
        found[name] = [
            round(await _round(protocol, transport, request, per_round), 2) for _ in range(rounds)
        ]
        protocol.connection_lost(None)
    return found


def main() -> None:
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
    sys.path.insert(0, str(tree))
    import uvloop

    found = uvloop.run(_measure(per_round, rounds))
    print(
        json.dumps(
            {
                "tree": str(tree),
                **{
                    name: {
                        "us_per_request": rates,
                        "best": min(rates),
                        "median": statistics.median(rates),
                    }
                    for name, rates in found.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
