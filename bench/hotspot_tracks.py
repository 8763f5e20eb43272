"""PostgreSQL's work on evaluation's hotspot tally (issue 12): batches of registrations
tallied through ``monitoring.tally_hotspots`` (the set-based consumer's path) into a
scratch database, with the matter-and-district lock taken two ways in alternate rounds:
A, ``SELECT … FOR UPDATE`` of the tracks (as before); B, the tally's advisory lock in a
statement before a plain read (``monitoring.lock_tallies``). (Measured too, once: an
advisory lock a matter and district, ~100 a batch: 6.53-6.83 against A's 6.28-7.23 and B's
5.99-6.56 us a ticket, WAL as B's.) Each round's cost is read from
pg_stat_statements (every statement of the scratch database, reset each round): PostgreSQL's
time and WAL records a ticket.

    python bench/hotspot_tracks.py [batch] [batches] [rounds] [pairs]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's). Prints JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
from datetime import timedelta
from typing import Any

import asyncpg
from intake_statement import reset, summary  # bench/ holds this script: its neighbour
from knowledge_search import pg_url, scratch_database

from services.evaluation.app import SPEC
from services.evaluation.handlers import monitoring
from shared.db import UnitOfWork, begin_on_driver
from tests.unit.test_set_based_consumers import T0, serving


async def totals(admin: str, database: str) -> tuple[float, int]:
    pg = await asyncpg.connect(admin)
    try:
        row = await pg.fetchrow(
            "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(wal_records), 0)"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
            " WHERE datname = $1) AND query NOT LIKE '%pg_stat_statements%'",
            database,
        )
    finally:
        await pg.close()
    assert row is not None
    return float(row[0]), int(row[1])


async def noop(*_: Any) -> None:  # A: the tracks' read locks them
    return None


async def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    pairs = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    admin = pg_url().replace("postgresql+asyncpg", "postgresql")
    chosen = random.Random(12345)
    matters = [f"M{m:03d}" for m in range(pairs // 12 + 1)]
    every = [(m, f"1201{d:02d}") for m in matters for d in range(12)][:pairs]
    ways = {
        "A": (noop, monitoring._TRACKS_PG.with_for_update()),
        "B": (monitoring.lock_tallies, monitoring._TRACKS_PG),
    }
    found: dict[str, dict[str, list[float]]] = {
        w: {"us_per_ticket": [], "wal_per_ticket": []} for w in ways
    }
    serial = 0
    spec = dataclasses.replace(SPEC, background=[])
    async with scratch_database() as url, serving(spec, url) as ctx:
        database = url.rpartition("/")[2]

        async def tally(n: int) -> None:
            nonlocal serial
            for _ in range(n):
                at = T0 + timedelta(hours=2 * serial)
                regs = [
                    monitoring.Registration(f"T{serial:06d}{i:04d}", *chosen.choice(every), at)
                    for i in range(size)
                ]
                serial += 1
                async with ctx.db.engine.begin() as conn:
                    await begin_on_driver(conn)
                    await monitoring.tally_hotspots(ctx, UnitOfWork(conn), regs)

        await tally(batches)  # warm-up: every track made, plans made
        for r in range(rounds):
            for name in ways if r % 2 == 0 else reversed(ways):
                monitoring.lock_tallies, monitoring._TRACKS_PG = ways[name]  # type: ignore[assignment]
                await reset(admin, database)
                await tally(batches)
                ms, wal = await totals(admin, database)
                found[name]["us_per_ticket"].append(ms * 1000 / (batches * size))
                found[name]["wal_per_ticket"].append(wal / (batches * size))
    print(json.dumps(summary(found, batch=size, batches=batches, pairs=pairs), indent=1))


if __name__ == "__main__":
    asyncio.run(main())
