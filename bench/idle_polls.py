"""What the platform does while nothing happens: the gateway and the six services started as
bench/e2e.py starts them (its settings, its database and Kafka, ``System``), a few tickets
through to warm them, then left alone for ``seconds``. Prints JSON: each process's CPU
(µs a second, every thread, from /proc's schedstat: exact, not the 10 ms ticks) and its
wake-ups (voluntary context switches a second), the database's PostgreSQL backends' CPU,
and the statements the idle processes ran (pg_stat_statements in this database's scope,
calls a second), busiest first. Every idle poll costs this much a second under load too.

    python bench/idle_polls.py [seconds] [rounds]

Rounds are windows one after another on the same running system. IDLE25_SITE (a directory
holding a sitecustomize.py) is put first on the processes' PYTHONPATH, to count timers;
BENCH_SETTINGS as bench/e2e.py's. The tree measured is the one this script is run from,
or IDLE_ROOT (run a tree's own python to measure another tree: A B B A)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

ROOT = Path(os.environ.get("IDLE_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from bench import pg_statements  # noqa: E402
from bench.e2e import ticket_bodies  # noqa: E402
from shared.settings import SERVICES  # noqa: E402
from tests.integration.conftest import (  # noqa: E402
    PROCESSES,
    System,
    _create_database,
    _drop_system,
    _script_output,
    free_port,
)

EXTRA_ENV = {
    "HOTLINE_LOG_LEVEL": "WARNING",
    "HOTLINE_DB_POOL_SIZE": "10",
    "HOTLINE_INTAKE_BATCH_SIZE": "64",
}
EXTRA_ENV.update(
    pair.split("=", 1) for pair in os.environ.get("BENCH_SETTINGS", "").split() if "=" in pair
)
WARM_TICKETS = 20
SETTLE_SECONDS = 15.0  # startup's own timers (first commits, joins) done before measuring


def on_cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of ``pid`` has run (0 when it is gone)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
    except FileNotFoundError:
        return 0
    return total


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid``: each a sleep ended by a wake."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
    except FileNotFoundError:
        return 0
    return total


async def backend_pids(pg: asyncpg.Connection, database: str) -> list[int]:
    rows = await pg.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'",
        database,
    )
    return [r[0] for r in rows]


async def statements(admin: str, database: str) -> dict[str, int]:
    pg = await asyncpg.connect(admin)
    try:
        rows = await pg.fetch(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid = " + pg_statements.DBID,
            database,
        )
    finally:
        await pg.close()
    return {" ".join(r["query"].split())[:160]: r["calls"] for r in rows}


def signal_all(pids: dict[str, int]) -> None:
    if os.environ.get("IDLE25_COUNT"):
        for pid in pids.values():
            os.kill(pid, 10)  # SIGUSR1: the sitecustomize's counters, dumped


async def window(
    system: System, pg: asyncpg.Connection, admin: str, seconds: float
) -> dict[str, Any]:
    pids = {p: proc.pid for p, proc in system.procs.items()}
    backends = await backend_pids(pg, system.database)
    await pg_statements.reset(admin, system.database)
    signal_all(pids)
    cpu0 = {p: on_cpu_ns(pid) for p, pid in pids.items()}
    wake0 = {p: wakeups(pid) for p, pid in pids.items()}
    pg0 = {pid: on_cpu_ns(pid) for pid in backends}
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    took = time.perf_counter() - started
    cpu = {p: (on_cpu_ns(pid) - cpu0[p]) / took / 1000 for p, pid in pids.items()}
    wake = {p: (wakeups(pid) - wake0[p]) / took for p, pid in pids.items()}
    later = await backend_pids(pg, system.database)
    pg_us = sum(on_cpu_ns(pid) - pg0.get(pid, 0) for pid in later) / took / 1000
    signal_all(pids)
    await asyncio.sleep(1.0)  # pg_stat_statements is written as each statement ends
    calls = await statements(admin, system.database)
    return {
        "seconds": round(took, 1),
        "cpu_us_a_second": {p: round(v) for p, v in cpu.items()},
        "processes_us_a_second": round(sum(cpu.values())),
        "postgres_us_a_second": round(pg_us),
        "wakeups_a_second": {p: round(v, 1) for p, v in wake.items()},
        "backends": len(later),
        "statements_a_second": {
            q: round(c / took, 2)
            for q, c in sorted(calls.items(), key=lambda kv: -kv[1])
            if "pg_stat" not in q and c
        },
    }


async def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    pg_url = os.environ.get("HOTLINE_PG_URL") or _script_output("postgres.sh")["HOTLINE_PG_URL"]
    kafka = os.environ.get("KAFKA_BOOTSTRAP") or _script_output("kafka.sh")["KAFKA_BOOTSTRAP"]
    system = System({"pg": pg_url, "kafka": kafka}, Path(tempfile.mkdtemp(prefix="bench-idle-")))
    system.ports = {p: free_port() for p in PROCESSES}
    env = dict(EXTRA_ENV)
    site = os.environ.get("IDLE25_SITE")
    if site:
        env["PYTHONPATH"] = f"{site}:{ROOT}"
    admin = pg_url.replace("postgresql+asyncpg", "postgresql")
    await _create_database(system)
    pg: asyncpg.Connection | None = None
    try:
        for process in PROCESSES:
            system.start(process, extra_env=env)
        for process in PROCESSES:
            await system.wait_ready(process, timeout=120)
        await system.login("operator")
        async with httpx.AsyncClient(
            base_url=system.gateway,
            headers={"authorization": f"Bearer {system.tokens['operator']}"},
            timeout=60,
        ) as client:
            for body in ticket_bodies(WARM_TICKETS):
                r = await client.post("/api/v1/intake/tickets", json=body)
                assert r.status_code == 201, r.text
        await asyncio.sleep(SETTLE_SECONDS)
        pg = await asyncpg.connect(system.db_url.replace("postgresql+asyncpg", "postgresql"))
        found = [await window(system, pg, admin, seconds) for _ in range(rounds)]
        print(json.dumps({"tree": str(ROOT), "services": list(SERVICES), "rounds": found}, indent=1,
                         ensure_ascii=False))
    finally:
        if pg is not None:
            await pg.close()
        system.stop_all()
        await _drop_system(system)


if __name__ == "__main__":
    uvloop.run(main())
