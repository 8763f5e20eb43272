"""CPU per request of the HTTP server every process here runs (issue 12): uvicorn as
shared/http_server.py configures it (httptools on uvloop, ``Server`` with a Unix socket),
serving a plain ASGI app that reads the request's body and answers a fixed 201 as intake's
registration does (content-type, content-length, x-request-id), so what is measured is the
server's own protocol work a request: parsing, the request's task, the response's writes.
The client is the gateway's own transport (gateway/transport.py HTTP1Transport over the Unix
socket, 32 requests in flight), whose CPU a request is given too: it reads what the server
writes, as the gateway reads a service.

    python bench/http_server.py [requests per round] [rounds] [server tree]

BENCH_TCP=1: over loopback TCP instead (as clients reach the gateway).
``server tree``: a checkout whose shared/http_server.py serves (its own .venv), e.g.
/work/wt/base22, to compare two trees (alternate them: the machine's speed drifts); the
client is always this tree's. Prints JSON: µs of CPU a request of the server and of the
client, each round, the best and the median."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 32

SERVE = """
import sys
sys.path.insert(0, sys.argv[1])
from shared.http_server import serve

answer = sys.argv[4].encode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-length", str(len(answer)).encode()),
                (b"content-type", b"application/json"),
                (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


serve(app, unix_socket=sys.argv[2], port=int(sys.argv[3]), log_level="warning")
"""


def cpu_seconds(pid: int) -> float:
    """A process's time on a CPU, to the nanosecond (/proc's stat counts 10 ms ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def _load(
    socket_path: str, port: int, server_pid: int, per_round: int, rounds: int
) -> dict[str, list[float]]:
    sys.path.insert(0, str(ROOT))
    import httpx

    from bench.gateway_proxy import ANSWER
    from bench.intake_request import BODY
    from gateway.transport import HTTP1Transport, Origin

    tcp = os.environ.get("BENCH_TCP") == "1"
    transport = HTTP1Transport(
        max_connections=200, max_keepalive_connections=64, uds=None if tcp else socket_path
    )
    origin = Origin.of(httpx.URL(f"http://127.0.0.1:{port}"))
    timeouts = {"connect": 2.0, "read": 30.0, "write": 10.0, "pool": 5.0}
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    ]
    for _ in range(300):
        try:
            await transport.send(
                origin, "POST", b"/tickets", headers, BODY, replayable=False, timeouts=timeouts
            )
            break
        except httpx.TransportError:
            await asyncio.sleep(0.1)

    async def round_of(n: int) -> None:
        left = [n]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                answer = await transport.send(
                    origin, "POST", b"/tickets", headers, BODY, replayable=False, timeouts=timeouts
                )
                assert answer.status == 201 and answer.content == ANSWER, answer

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    await round_of(per_round)  # warm-up: connections, caches
    found: dict[str, list[float]] = {"server": [], "client": []}
    for _ in range(rounds):
        before, client_before = cpu_seconds(server_pid), time.process_time()
        await round_of(per_round)
        found["server"].append((cpu_seconds(server_pid) - before) / per_round * 1e6)
        found["client"].append((time.process_time() - client_before) / per_round * 1e6)
    await transport.aclose()
    return found


def main() -> None:
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
    sys.path.insert(0, str(ROOT))
    from bench.gateway_proxy import ANSWER
    from tests.integration.conftest import free_port

    with tempfile.TemporaryDirectory(prefix="httpbench") as work:
        socket_path, port = f"{work}/server.sock", free_port()
        server = subprocess.Popen(
            [
                str(tree / ".venv/bin/python"),
                "-c",
                SERVE,
                str(tree),
                socket_path,
                str(port),
                ANSWER.decode(),
            ],
            cwd=tree,
        )
        try:
            found = asyncio.run(_load(socket_path, port, server.pid, per_round, rounds))
        finally:
            server.terminate()
            server.wait(30)
    print(
        json.dumps(
            {
                "tree": str(tree),
                "transport": "TCP" if os.environ.get("BENCH_TCP") == "1" else "Unix socket",
                **{
                    f"{side}_cpu_us_per_request": {
                        "rounds": [round(r, 1) for r in rates],
                        "best": round(min(rates), 1),
                        "median": round(statistics.median(rates), 1),
                    }
                    for side, rates in found.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
