"""SLA scale benchmark (`make bench-sla`, prints JSON; not a test).

1,000,000 open clocks in PostgreSQL, 10,000 of them falling due in the same second: the
lag from each deadline to its `sla.overdue` on the Kafka bus (p50, p99, max), and the SLA
process's CPU and memory while the million clocks wait. Goal: p99 lag under 1 s.

Uses the PostgreSQL and Kafka that scripts/ start (or HOTLINE_PG_URL / KAFKA_BOOTSTRAP),
a fresh database and topic prefix, and the real SLA service as its own process."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.db import Database  # noqa: E402
from shared.events import Envelope  # noqa: E402
from tests.ports import free_port  # noqa: E402

TOTAL = int(os.environ.get("BENCH_CLOCKS", "1000000"))
DUE_TOGETHER = int(os.environ.get("BENCH_DUE", "10000"))
LEAD_SECONDS = float(os.environ.get("BENCH_LEAD_SECONDS", "25"))


def address(script: str, key: str, env: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    out = subprocess.run(
        [str(ROOT / "scripts" / script), "start"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)[key]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


async def main() -> None:
    pg = address("postgres.sh", "HOTLINE_PG_URL", "HOTLINE_PG_URL")
    kafka = address("kafka.sh", "KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP")
    database = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = pg.replace("postgresql+asyncpg", "postgresql")
    base = admin_dsn.rsplit("/", 1)[0]
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    db_url = f"{pg.rsplit('/', 1)[0]}/{database}"
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    proc: subprocess.Popen[bytes] | None = None
    try:
        db = Database("sla", db_url)
        await db.migrate(ROOT / "services" / "sla" / "migrations")
        await db.dispose()

        now = datetime.now(UTC)
        due_second = (now + timedelta(seconds=LEAD_SECONDS + 60)).replace(microsecond=0)
        conn = await asyncpg.connect(f"{base}/{database}", server_settings={"search_path": "sla"})
        t = time.perf_counter()
        columns = [
            "ticket_id",
            "kind",
            "round",
            "dispatch_no",
            "unit_id",
            "district",
            "urgency",
            "period",
            "started_at",
            "deadline",
            "provisional",
            "warned_at",
            "escalation_level",
            "next_due_at",
            "extensions",
        ]

        def rows(start: int, count: int, due: bool) -> list[tuple[object, ...]]:
            out = []
            for i in range(start, start + count):
                deadline = (
                    due_second + timedelta(microseconds=random.randrange(1_000_000))
                    if due
                    else now + timedelta(hours=2, seconds=random.randrange(30 * 86400))
                )
                out.append(
                    (
                        f"TJ{i:014d}",
                        "completion",
                        1,
                        1,
                        f"unit-{i % 500}",
                        "120101",
                        "general",
                        "7wd",
                        now,
                        deadline,
                        False,
                        now,
                        0,
                        deadline,
                        0,
                    )
                )
            return out

        chunk = 100_000
        for start in range(0, TOTAL - DUE_TOGETHER, chunk):
            count = min(chunk, TOTAL - DUE_TOGETHER - start)
            await conn.copy_records_to_table(
                "clocks", records=rows(start, count, False), columns=columns
            )
        await conn.copy_records_to_table(
            "clocks", records=rows(TOTAL - DUE_TOGETHER, DUE_TOGETHER, True), columns=columns
        )
        await conn.execute("ANALYZE clocks")
        await conn.close()
        load_seconds = time.perf_counter() - t

        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HOTLINE_DB_URL": db_url,
            "HOTLINE_BUS_URL": f"kafka://{kafka}",
            "HOTLINE_TOPIC_PREFIX": prefix,
            "HOTLINE_PORT": str(port),
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
        log = open(Path(tempfile.gettempdir()) / f"{prefix}sla.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.sla"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)

        consumer = AIOKafkaConsumer(
            f"{prefix}hotline.sla",
            bootstrap_servers=kafka,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        # idle: a million clocks wait; measure what that costs
        await asyncio.sleep(2)
        c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
        idle_until = due_second - timedelta(seconds=3)
        while datetime.now(UTC) < idle_until:
            await asyncio.sleep(0.5)
        idle_cpu = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0) * 100
        idle_rss = rss_mb(proc.pid)

        lags: list[float] = []
        scan_lags: list[float] = []  # deadline → the scanner's transaction (before the bus)
        seen: set[str] = set()
        duplicates = 0
        give_up = time.monotonic() + 120
        while len(lags) < DUE_TOGETHER and time.monotonic() < give_up:
            batch = await consumer.getmany(timeout_ms=200)
            arrived = datetime.now(UTC)
            for messages in batch.values():
                for message in messages:
                    envelope = Envelope.from_json(message.value)
                    if envelope.type != "sla.overdue":
                        continue
                    if envelope.ticket_id in seen:
                        duplicates += 1
                        continue
                    seen.add(envelope.ticket_id or "")
                    deadline = datetime.fromisoformat(envelope.payload["deadline"])
                    lags.append((arrived - deadline).total_seconds())
                    detected = datetime.fromisoformat(envelope.payload["detected_at"])
                    scan_lags.append((detected - deadline).total_seconds())
        await consumer.stop()
        lags.sort()
        scan_lags.sort()
        print(
            json.dumps(
                {
                    "benchmark": "sla_overdue",
                    "clocks_open": TOTAL,
                    "due_in_the_same_second": DUE_TOGETHER,
                    "load_seconds": round(load_seconds, 1),
                    "overdue_events_received": len(lags),
                    "duplicates": duplicates,
                    "lag_seconds_p50": round(pct(lags, 0.50), 3) if lags else None,
                    "lag_seconds_p99": round(pct(lags, 0.99), 3) if lags else None,
                    "lag_seconds_max": round(lags[-1], 3) if lags else None,
                    "scanner_lag_seconds_p50": round(pct(scan_lags, 0.50), 3)
                    if scan_lags
                    else None,
                    "scanner_lag_seconds_p99": round(pct(scan_lags, 0.99), 3)
                    if scan_lags
                    else None,
                    "idle_cpu_percent_of_one_core": round(idle_cpu, 2),
                    "idle_rss_mb": round(idle_rss, 1),
                    "goal": "p99 lag < 1 s",
                },
                indent=2,
            )
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
