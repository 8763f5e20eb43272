"""CPU an outbox row costs on PostgreSQL: ``Database.write_outbox`` of a consumer's batch of
events (bench/consumers.py's registrations: Chinese text, ~0.7 KiB of JSON each) and the
relay's batch that sends them and marks them sent (``OutboxRelay.relay_once``, the bus a
stub that takes the records), in a migrated service's database of its own (evaluation's
schema), dropped at the end.

    python bench/outbox_rows.py [events a batch] [batches a round] [rounds]

Prints JSON: microseconds an event of this process's CPU (``client``) and of the
database's backends (``backend``, their /proc schedstat: parsing, planning, executing,
committing) for each step, the best round and the median (the first round warms up and is
not counted), and the WAL records an event (pg_stat_statements, if loaded). BENCH_ROOT:
the tree to run (this one's by default), to compare two trees alternating, minutes apart
(the machine's speed drifts)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from bench.consumers import registrations  # noqa: E402
from bench.knowledge_search import scratch_database  # noqa: E402
from shared.db import Database, begin_on_driver  # noqa: E402
from shared.relay import OutboxRelay  # noqa: E402

MIGRATIONS = ROOT / "services" / "evaluation" / "migrations"


class StubBus:
    """Takes the relay's records and drops them."""

    def __init__(self) -> None:
        self.sent = 0

    async def publish_raw(self, records: list[Any]) -> None:
        self.sent += len(records)


async def backend_seconds(admin: asyncpg.Connection, database: str) -> float:
    """The CPU time so far of the database's backends other than ``admin``'s."""
    pids = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    total = 0
    for (pid,) in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


async def wal_records(admin: asyncpg.Connection, database: str) -> float:
    """The WAL records the database's statements wrote so far (pg_stat_statements; 0
    without it)."""
    try:
        return float(
            await admin.fetchval(
                "SELECT coalesce(sum(wal_records), 0) FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
                database,
            )
        )
    except asyncpg.PostgresError:
        return 0.0


async def timed(
    admin: asyncpg.Connection, database: str, step: Any
) -> tuple[float, float, float]:
    """The CPU ``step`` (a coroutine) takes, this process's and the database's backends',
    and the WAL records it writes."""
    wal = await wal_records(admin, database)
    client, backend = time.process_time(), await backend_seconds(admin, database)
    await step
    client = time.process_time() - client
    backend = await backend_seconds(admin, database) - backend
    return client, backend, await wal_records(admin, database) - wal


async def write(db: Database, events: list[Any], size: int) -> None:
    """``events`` written ``size`` at a time, each batch in a transaction of its own."""
    for b in range(0, len(events), size):
        async with db.engine.begin() as conn:
            await begin_on_driver(conn)
            await db.write_outbox(conn, events[b : b + size])


async def send(relay: OutboxRelay, batches: int) -> None:
    for _ in range(batches):
        await relay.relay_once()


async def run(size: int, batches: int, rounds: int) -> dict[str, Any]:
    async with scratch_database() as url:
        database = url.rpartition("/")[2]
        admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:  # its view of the statements (the library is loaded by the server, if at all)
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        except asyncpg.PostgresError:
            pass
        db = Database("evaluation", url, pool_size=2)
        try:
            await db.migrate(MIGRATIONS)
            bus = StubBus()
            relay = OutboxRelay(db, bus, batch_size=size)  # type: ignore[arg-type]
            per_round = []
            for r in range(rounds + 1):
                events = registrations(size * batches, r * size * batches)
                spent = {
                    "write_outbox": await timed(admin, database, write(db, events, size)),
                    "relay": await timed(admin, database, send(relay, batches)),
                }
                if r:
                    n = size * batches
                    per_round.append(
                        {k: (c / n * 1e6, b / n * 1e6, w / n) for k, (c, b, w) in spent.items()}
                    )
            assert bus.sent == (rounds + 1) * size * batches, bus.sent
        finally:
            await db.dispose()
            await admin.close()
    result: dict[str, Any] = {"events_a_batch": size, "batches": batches, "rounds": rounds}
    for name in per_round[0]:
        for i, side in enumerate(("client", "backend")):
            values = [p[name][i] for p in per_round]
            result[f"{name} {side}"] = {
                "best_us": round(min(values), 2),
                "median_us": round(statistics.median(values), 2),
            }
        result[f"{name} wal_records"] = round(statistics.median(p[name][2] for p in per_round), 2)
    return result


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(size, batches, rounds))
    print(json.dumps(result, indent=1), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
