"""CPU per request of the gateway's hot path (issue 12): POST /api/v1/intake/tickets through
the gateway process as bench-e2e runs it (``python -m gateway``: uvicorn, httptools, uvloop,
the whole middleware stack, token check, signing, the transport over a Unix socket or TCP) to a
stub intake that answers every request at once with a fixed 201, so the gateway's CPU is
all that is measured: its process's CPU time (/proc) over each round, divided by the
round's requests.

    python bench/gateway_proxy.py [requests per round] [rounds] [gateway tree]

``gateway tree``: a checkout whose gateway to run (its own .venv), e.g. /work/wt/base18,
to compare two trees on one machine minute (alternate them; the machine's speed drifts).
GATEWAY_ENV="K=V ..." adds settings or environment to the gateway process (a profiler);
GATEWAY_ENV="HOTLINE_INTAKE_UDS=" has it reach the stub over loopback TCP instead.
Prints JSON: µs of the gateway's CPU a request, each round, the best and the median; and
the stub's median (the service's side of the socket)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httptools
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.http_load import KeepAliveConnection  # noqa: E402
from bench.intake_request import BODY  # noqa: E402
from tests.integration.conftest import PASSWORD, free_port  # noqa: E402

CONCURRENCY = 32


def cpu_seconds(pid: int) -> float:
    """The process's time on a CPU, to the nanosecond (/proc's stat counts 10 ms ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


ANSWER = json.dumps(
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
        "content": json.loads(BODY)["content"],
        "requester_name": "王*",
        "requester_phone": "139****5678",
        "anonymous": False,
        "flagged": False,
        "registered_at": "2026-01-15T08:00:00Z",
    },
    ensure_ascii=False,
).encode()


class _StubIntake(asyncio.Protocol):
    """Answers each request as intake's uvicorn would, headers included, without work."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.request_id = b""

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-request-id":
            self.request_id = value

    def on_message_complete(self) -> None:
        self.transport.write(
            b"HTTP/1.1 201 Created\r\ndate: Thu, 15 Jan 2026 08:00:00 GMT\r\n"
            b"server: uvicorn\r\ncontent-length: %d\r\ncontent-type: application/json\r\n"
            b"x-request-id: %s\r\n\r\n%s" % (len(ANSWER), self.request_id, ANSWER)
        )


async def _stub(path: str, port: int) -> None:
    """The stub on the Unix socket ``path`` and on the TCP ``port`` alike."""
    loop = asyncio.get_running_loop()
    unix = await loop.create_unix_server(_StubIntake, path)
    tcp = await loop.create_server(_StubIntake, "127.0.0.1", port)
    async with unix, tcp:
        await asyncio.gather(unix.serve_forever(), tcp.serve_forever())


async def _load(
    base_url: str, gateway_pid: int, stub_pid: int, per_round: int, rounds: int
) -> tuple[list[float], list[float]]:
    """µs of CPU a request of the gateway and of the stub, each round."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        r = await client.post(
            "/api/v1/auth/login", json={"username": "operator", "password": PASSWORD}
        )
        r.raise_for_status()
        token = r.json()["access_token"]
    body = json.loads(BODY)
    connections = [
        KeepAliveConnection(base_url, {"authorization": f"Bearer {token}"})
        for _ in range(CONCURRENCY)
    ]

    async def round_of(n: int) -> None:
        left = [n]

        async def worker(connection: KeepAliveConnection) -> None:
            while left[0] > 0:
                left[0] -= 1
                answer = await connection.post("/api/v1/intake/tickets", body)
                assert answer.status_code == 201, answer.text

        await asyncio.gather(*(worker(c) for c in connections))

    await round_of(per_round)  # warm-up: connections, caches
    per_request, stub_per_request = [], []
    for _ in range(rounds):
        before, stub_before = cpu_seconds(gateway_pid), cpu_seconds(stub_pid)
        await round_of(per_round)
        per_request.append((cpu_seconds(gateway_pid) - before) / per_round * 1e6)
        stub_per_request.append((cpu_seconds(stub_pid) - stub_before) / per_round * 1e6)
    for connection in connections:
        await connection.close()
    return per_request, stub_per_request


def main() -> None:
    if sys.argv[1:2] == ["--stub"]:
        asyncio.run(_stub(sys.argv[2], int(sys.argv[3])))
        return
    per_round = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    tree = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT
    with tempfile.TemporaryDirectory(prefix="gwbench") as work:
        socket_path = f"{work}/intake.sock"
        stub_port, port = free_port(), free_port()
        stub = subprocess.Popen([sys.executable, __file__, "--stub", socket_path, str(stub_port)])
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(
            HOTLINE_ENV="test",
            HOTLINE_DB_URL=f"sqlite+aiosqlite:///{work}/gateway.db",
            HOTLINE_PORT=str(port),
            HOTLINE_INTAKE_URL=f"http://127.0.0.1:{stub_port}",
            HOTLINE_INTAKE_UDS=socket_path,
            HOTLINE_LOG_LEVEL="WARNING",
        )
        env.update(
            item.partition("=")[::2] for item in shlex.split(os.environ.get("GATEWAY_ENV", ""))
        )
        while not os.path.exists(socket_path):
            time.sleep(0.05)
        gateway = subprocess.Popen(
            [str(tree / ".venv/bin/python"), "-m", "gateway"], cwd=tree, env=env
        )
        try:
            rates, stub_rates = asyncio.run(
                _load(f"http://127.0.0.1:{port}", gateway.pid, stub.pid, per_round, rounds)
            )
        finally:
            gateway.terminate()
            gateway.wait(30)
            stub.terminate()
            stub.wait(30)
    print(
        json.dumps(
            {
                "tree": str(tree),
                "transport": "Unix socket" if env["HOTLINE_INTAKE_UDS"] else "TCP",
                "gateway_cpu_us_per_request": [round(r, 1) for r in rates],
                "best": round(min(rates), 1),
                "median": round(statistics.median(rates), 1),
                # the service's side of the socket (the stub: asyncio, no uvicorn)
                "stub_cpu_us_per_request_median": round(statistics.median(stub_rates), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
