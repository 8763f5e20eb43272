"""The outbox relay's pace under a steady stream of commits (issue 12): rounds a second,
and the CPU of the relay's process, of its PostgreSQL backend and of the Kafka broker per
event sent, and how long events waited (commit -> marked sent), for rounds alternating
A B B A: A with ``pace_seconds`` 0 (a round as soon as a commit wakes it, after the
gather), B with ``pace`` (rounds at least that far apart while busy).

    python bench/relay_pace.py [events a second] [seconds] [pairs] [pace ms]

A writer commits ``events a second`` outbox rows (~600 bytes, keys spread, as
``bench/relay_marking.py``'s) every 10 ms on a connection of its own and wakes the relay as
a service's commit does; the relay sends them through a ``KafkaBus`` (BENCH_KAFKA, default
127.0.0.1:9092; the broker's CPU is read from HOTLINE_RUN_DIR's kafka.pid, so give the
broker's run directory with it). BENCH_HOG (default 0.4): the share of the event loop a
busy task takes in 2 ms slices, as a service's requests do (an idle loop makes each round
far shorter than in a loaded service, so far more of them); its CPU is not counted.
BENCH_GATHER_MS (5, the services' default).

Prints JSON: per round rounds/s, us a event of this process (without the hog), of the
relay's backend and of the broker, and the wait p50/p99 in ms.

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's) and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import uvloop  # noqa: E402
from knowledge_search import scratch_database  # noqa: E402 - bench/ holds this script
from relay_marking import DDL, PAYLOAD, SCHEMA, WRITE, cpu_ns  # noqa: E402

from bench.e2e import cpu_seconds, kafka_pid  # noqa: E402
from shared.bus import KafkaBus  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.relay import OutboxRelay  # noqa: E402

BOOTSTRAP = os.environ.get("BENCH_KAFKA", "127.0.0.1:9092")
HOG = float(os.environ.get("BENCH_HOG", "0.4"))
GATHER = float(os.environ.get("BENCH_GATHER_MS", "5")) / 1000
EVERY = 0.01


async def hog(spent: list[float]) -> None:
    """Busy the loop ``HOG`` of the time, in 2 ms slices."""
    if HOG <= 0:
        return
    slice_, rest = 0.002, 0.002 * (1 - HOG) / HOG
    while True:
        t = time.thread_time()
        end = time.perf_counter() + slice_
        while time.perf_counter() < end:
            pass
        spent[0] += time.thread_time() - t
        await asyncio.sleep(rest)


async def one_round(url: str, pace: float, rate: float, seconds: float) -> dict[str, Any]:
    plain = url.replace("postgresql+asyncpg", "postgresql")
    writer = await asyncpg.connect(plain, server_settings={"search_path": SCHEMA})
    await writer.execute("TRUNCATE outbox")
    db = Database(SCHEMA, url, pool_size=2)
    bus = KafkaBus(BOOTSTRAP, prefix=f"benchpace{uuid.uuid4().hex[:8]}.")
    await bus.start()
    relay = OutboxRelay(db, bus, batch_size=2000, gather_seconds=GATHER, pace_seconds=pace)
    await relay.relay_once()  # its connection opened
    mine = await writer.fetchval("SELECT pg_backend_pid()")
    pids = [
        r[0]
        for r in await writer.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> $1 AND backend_type = 'client backend'",
            mine,
        )
    ]
    broker = kafka_pid()
    spent = [0.0]
    hogging = asyncio.create_task(hog(spent))
    relay.start()
    await asyncio.sleep(0.5)
    batches0 = relay.batches
    cpu0, back0, hog0 = time.process_time(), cpu_ns(pids), spent[0]
    broker0 = cpu_seconds(broker) if broker else 0.0
    t0 = time.monotonic()
    written, n = 0, 0
    while time.monotonic() - t0 < seconds:
        n += 1
        due = int(rate * (time.monotonic() - t0)) + 1
        if due > written:
            await writer.execute(WRITE, n, PAYLOAD, due - written)
            written = due
            db.events_written.set()
        await asyncio.sleep(EVERY)
    while await writer.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0 - (spent[0] - hog0)
    back = (cpu_ns(pids) - back0) / 1e9
    brk = (cpu_seconds(broker) if broker else 0.0) - broker0
    rounds = relay.batches - batches0
    hogging.cancel()
    await relay.stop()
    waits = [
        r[0] * 1000
        for r in await writer.fetch(
            "SELECT extract(epoch FROM published_at - created_at)::float8 FROM outbox"
        )
    ]
    await bus.stop()
    await db.dispose()
    await writer.close()
    waits.sort()
    return {
        "pace_ms": pace * 1000,
        "events": written,
        "rounds_a_second": round(rounds / elapsed, 1),
        "events_a_round": round(written / max(1, rounds), 1),
        "process_us_an_event": round(cpu / written * 1e6, 2),
        "backend_us_an_event": round(back / written * 1e6, 2),
        "broker_us_an_event": round(brk / written * 1e6, 2),
        "wait_ms_p50": round(waits[len(waits) // 2], 1),
        "wait_ms_p99": round(waits[int(len(waits) * 0.99)], 1),
    }


async def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 2000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    pace = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.1
    async with scratch_database() as url:
        plain = url.replace("postgresql+asyncpg", "postgresql")
        setup = await asyncpg.connect(plain)
        await setup.execute(DDL[0])
        await setup.execute(f"SET search_path = {SCHEMA}")
        for statement in DDL[1:]:
            await setup.execute(statement)
        await setup.close()
        await one_round(url, 0.0, rate, 2)  # warm: connections, statements, the broker
        got: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
        for n in range(pairs):
            for way in "AB" if n % 2 == 0 else "BA":
                result = await one_round(url, pace if way == "B" else 0.0, rate, seconds)
                print(json.dumps({way: result}), file=sys.stderr, flush=True)
                got[way].append(result)
    summary = {
        way: {k: [r[k] for r in rounds] for k in rounds[0] if k != "pace_ms"}
        for way, rounds in got.items()
    }
    for way, rounds in got.items():
        summary[way]["median"] = {
            k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "pace_ms"
        }
    print(json.dumps({"rate": rate, "seconds": seconds, "pace_ms": pace * 1000, **summary}))


if __name__ == "__main__":
    uvloop.run(main())
