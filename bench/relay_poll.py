"""The cost of one idle look of the outbox relay (``OutboxRelay._any_unpublished``, what
its idle poll runs every ``relay_poll_seconds`` in every service process while nothing wakes
it): this process's CPU and the database backend's, a look, in a database of its own whose
outbox holds only sent rows (as a quiet service's does). Prints JSON.

    python bench/relay_poll.py [looks] [rounds]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import asyncpg
import uvloop
from knowledge_search import scratch_database  # bench/ holds this script
from relay_marking import DDL, PAYLOAD, SCHEMA, WRITE, Sink, cpu_ns

from shared.db import Database
from shared.relay import OutboxRelay


async def measure(url: str, looks: int, rounds: int) -> dict[str, Any]:
    plain = url.replace("postgresql+asyncpg", "postgresql")
    name = plain.rpartition("/")[2]
    writer = await asyncpg.connect(plain, server_settings={"search_path": SCHEMA})
    db = Database(SCHEMA, url, pool_size=2)
    try:
        for statement in DDL:
            await writer.execute(statement)
        await writer.execute(WRITE, 0, PAYLOAD, 2000)
        await writer.execute("UPDATE outbox SET published_at = now()")
        await writer.execute("ANALYZE outbox")
        relay = OutboxRelay(db, Sink())  # type: ignore[arg-type]
        assert not await relay._any_unpublished()  # its connection opened, statement prepared
        mine = await writer.fetchval("SELECT pg_backend_pid()")
        pids = [
            r[0]
            for r in await writer.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2"
                " AND backend_type = 'client backend'",
                name,
                mine,
            )
        ]
        client, backend = [], []
        for _ in range(rounds):
            c0, b0 = time.process_time(), cpu_ns(pids)
            for _ in range(looks):
                await relay._any_unpublished()
            client.append((time.process_time() - c0) / looks * 1e6)
            backend.append((cpu_ns(pids) - b0) / looks / 1000)
        return {
            "looks": looks,
            "rounds": rounds,
            "client_us_per_look": round(statistics.median(client), 1),
            "backend_us_per_look": round(statistics.median(backend), 1),
        }
    finally:
        await db.dispose()
        await writer.close()


async def main() -> None:
    looks = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    async with scratch_database() as url:
        print(json.dumps(await measure(url, looks, rounds), indent=1))


if __name__ == "__main__":
    uvloop.run(main())
