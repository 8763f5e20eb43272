"""How many tickets per second the embedded system (`make run`) accepts through the
gateway: a first figure, not the 1,000/s distributed target. Prints JSON.

Starts `python -m hotline` in a temporary folder on a free port, logs in, then posts
tickets from CONCURRENCY clients for DURATION seconds and waits until every ticket has
reached `dispatched` (end to end through the in-process bus)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ports import free_port  # noqa: E402

DURATION = float(os.environ.get("BENCH_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
BODY = {
    "channel": "web",
    "type": "complaint",
    "matter_code": "URBAN-003",
    "district": "120104",
    "address": "南开区长虹街道某路口",
    "content": "路面有大坑，电动车经过很危险，希望尽快修补",
    "requester": {"name": "陈伟", "phone": "13512345678"},
}


async def main() -> None:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hotline-bench-")
    env = {
        **os.environ,
        "HOTLINE_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "HOTLINE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            r = await client.post(
                "/api/v1/auth/login", json={"username": "operator", "password": "demo12345"}
            )
            client.headers["authorization"] = f"Bearer {r.json()['access_token']}"
            latencies: list[float] = []
            errors = 0
            stop_at = time.perf_counter() + DURATION

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    resp = await client.post("/api/v1/intake/tickets", json=BODY)
                    if resp.status_code == 201:
                        latencies.append(time.perf_counter() - t)
                    else:
                        errors += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            accepted_seconds = time.perf_counter() - start
            total = len(latencies)
            while True:
                done = (
                    await client.get(
                        "/api/v1/dispatch/tickets", params={"state": "dispatched", "limit": 1}
                    )
                ).json()
                if done["count"] >= total or time.perf_counter() - start > DURATION * 20:
                    break
                await asyncio.sleep(0.2)
            end_to_end = time.perf_counter() - start
        latencies.sort()
        print(
            json.dumps(
                {
                    "benchmark": "intake_embedded",
                    "mode": "embedded (SQLite, in-process bus), one process",
                    "concurrency": CONCURRENCY,
                    "tickets_accepted": total,
                    "errors": errors,
                    "accept_seconds": round(accepted_seconds, 2),
                    "tickets_per_second_accepted": round(total / accepted_seconds, 1),
                    "tickets_dispatched": done["count"],
                    "tickets_per_second_end_to_end": round(done["count"] / end_to_end, 1),
                    "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
                    "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
