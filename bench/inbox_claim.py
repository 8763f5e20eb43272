"""CPU of a consumer's inbox claim as its batches make it (``Database.claim_unparked`` with
``all_new``, in ``kept_transaction``: begun and committed as a batch's transaction is):
batches of ``rows`` new event ids and their tickets' keys, nothing parked, on the real
PostgreSQL in a database of its own (dropped at the end).

    python bench/inbox_claim.py [rows] [batches] [rounds]

Prints JSON: microseconds an event of this process's CPU (``client``) and of the database
backends' (``server``, from /proc: needs the server on this machine), the best round and
the median. Compare two trees with BENCH_ROOT, alternating (A B B A), minutes apart."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# BENCH_ROOT: the tree whose database code runs (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.e2e import cpu_seconds  # noqa: E402
from bench.knowledge_search import scratch_service_db  # noqa: E402
from shared.db import Database  # noqa: E402
from shared.events.base import event_id_text  # noqa: E402


async def backends(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        return [r[0] for r in rows]


async def measure(db: Database, rows: int, batches: int, rounds: int) -> dict[str, Any]:
    client: list[float] = []
    server: list[float] = []
    for r in range(rounds + 1):  # the first round warms up
        work = [
            ([event_id_text() for _ in range(rows)], [f"T{r}-{b}-{n}" for n in range(rows)])
            for b in range(batches)
        ]
        pids = await backends(db)
        server_from = sum(cpu_seconds(p) for p in pids)
        start = time.process_time()
        for ids, keys in work:
            async with db.kept_transaction() as conn:
                await db.claim_unparked(conn, "bench", ids, keys, all_new=True)
        spent = time.process_time() - start
        server_spent = sum(cpu_seconds(p) for p in pids) - server_from
        if r:
            client.append(spent / (rows * batches) * 1e6)
            server.append(server_spent / (rows * batches) * 1e6)
    return {
        "rows": rows,
        "client_us": {"best": round(min(client), 3), "median": round(statistics.median(client), 3)},
        "server_us": {"best": round(min(server), 3), "median": round(statistics.median(server), 3)},
    }


async def run(rows: int, batches: int, rounds: int) -> dict[str, Any]:
    async with scratch_service_db() as db:
        return await measure(db, rows, batches, rounds)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(json.dumps(asyncio.run(run(rows, batches, rounds))))


if __name__ == "__main__":
    main()
