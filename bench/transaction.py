"""CPU of this process a consumer's batch transaction costs on PostgreSQL (shared/db.py
``kept_transaction``: a kept connection, begun and committed on the driver), with one
statement in it (a claim-sized ``SELECT``) against the same statement alone, so that the
difference is the transaction's own begin and commit.

    python bench/transaction.py [transactions per round] [rounds]

Prints JSON: microseconds of CPU a transaction (best round and median) of each way."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.knowledge_search import scratch_service_db  # noqa: E402
from shared.db import in_transaction  # noqa: E402

STATEMENT = "SELECT $1::int"


async def run(n: int, rounds: int) -> dict[str, object]:
    async with scratch_service_db() as db:
        async with db.driver_connection() as (_, raw):
            await raw.fetch(STATEMENT, 1)

        async def alone() -> None:
            async with db.driver_connection() as (_, raw):
                await raw.fetch(STATEMENT, 1)

        async def in_transaction() -> None:
            async with db.kept_transaction() as conn:
                raw = await in_transaction(conn)
                await raw.fetch(STATEMENT, 1)

        times: dict[str, list[float]] = {"alone": [], "transaction": []}
        for _ in range(rounds + 1):
            for name, way in (("alone", alone), ("transaction", in_transaction)):
                start = time.process_time()
                for _ in range(n):
                    await way()
                times[name].append((time.process_time() - start) / n * 1e6)
    result: dict[str, object] = {"transactions": n}
    for name, t in times.items():
        result[name] = {
            "best_us": round(min(t[1:]), 1),
            "median_us": round(statistics.median(t[1:]), 1),
        }
    return result


def profile(n: int) -> None:
    import cProfile
    import pstats

    async def go() -> None:
        async with scratch_service_db() as db:

            async def one() -> None:
                async with db.kept_transaction() as conn:
                    raw = await in_transaction(conn)
                    await raw.fetch(STATEMENT, 1)

            await one()
            p = cProfile.Profile()
            p.enable()
            for _ in range(n):
                await one()
            p.disable()
            pstats.Stats(p).sort_stats("tottime").print_stats(25)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(go())


def main() -> None:
    if os.environ.get("PROFILE"):
        return profile(int(os.environ["PROFILE"]))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        print(json.dumps(runner.run(run(n, rounds)), indent=1))


if __name__ == "__main__":
    main()
