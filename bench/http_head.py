"""CPU of writing one response through the uvicorn request-response cycle every process
here serves with (shared/http_server.py ``HotlineProtocol``'s): ``http.response.start`` then
``http.response.body``, as intake answers a registration (three headers of the app's, the
server's ``date`` and ``server``), against a transport that keeps nothing. No socket, no loop:
each ``send`` runs to its end at once, so only the cycle's own Python is measured.

    python bench/http_head.py [responses per round] [rounds] [tree]

``tree``: a checkout whose shared/http_server.py to measure (default: this one), to compare
two trees (alternate them). Prints JSON: µs a response, each round, the best and the median."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class _Flow:
    write_paused = False


def _run(coroutine: Any) -> None:
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("a send waited")


def main() -> None:
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
    sys.path.insert(0, str(tree))
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from shared import http_server

    cycle_class = getattr(http_server, "_HeadWithBody", RequestResponseCycle)
    body = b'{"ticket_id":"TJ20260115000123","status":"registered"}' + b" " * 600
    start: Any = {
        "type": "http.response.start",
        "status": 201,
        "headers": [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
        ],
    }
    end: Any = {"type": "http.response.body", "body": body}
    default_headers = [(b"date", b"Sun, 06 Dec 2026 02:50:00 GMT"), (b"server", b"uvicorn")]
    scope = {"type": "http", "method": "POST", "path": "/tickets"}
    log = logging.getLogger("bench")
    transport, flow, event = _Transport(), _Flow(), asyncio.Event()

    def one_round() -> float:
        cycles = [
            cycle_class(
                scope,  # type: ignore[arg-type]
                transport,  # type: ignore[arg-type]
                flow,  # type: ignore[arg-type]
                log,
                log,
                False,
                default_headers,
                event,
                False,
                True,
                lambda: None,
            )
            for _ in range(per_round)
        ]
        began = time.process_time()
        for cycle in cycles:
            _run(cycle.send(start))
            _run(cycle.send(end))
        return 1e6 * (time.process_time() - began) / per_round

    one_round()  # warm-up
    found = [round(one_round(), 3) for _ in range(rounds)]
    print(
        json.dumps(
            {
                "tree": str(tree),
                "us_per_response": found,
                "best": min(found),
                "median": statistics.median(found),
            }
        )
    )


if __name__ == "__main__":
    main()
