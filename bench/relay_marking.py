"""PostgreSQL's cost of the outbox relay's batches (issue 12): each batch reads the unsent
rows and marks them sent (``OutboxRelay.relay_once`` with a bus that sends nothing), in a
database of its own. Prints JSON: the CPU of the database's backends (their
``/proc/<pid>/schedstat``, so the server must run on this machine) and the WAL records
(pg_stat_statements, reset in this database's scope before each batch) per row sent.

    python bench/relay_marking.py [rows per batch] [batches]

Needs PostgreSQL with pg_stat_statements (``HOTLINE_PG_URL``, else scripts/postgres.sh's).
Compare two trees by running each from its own checkout, alternating."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from knowledge_search import pg_url, scratch_database  # bench/ holds this script

from shared.bus import RawEvent
from shared.db import Database
from shared.relay import OutboxRelay

SCHEMA = "relayed"
# the outbox as the services' migrations leave it
DDL = (
    f"CREATE SCHEMA {SCHEMA}",
    "CREATE TABLE outbox (id SERIAL PRIMARY KEY, event_id VARCHAR(36) NOT NULL,"
    " topic VARCHAR(100) NOT NULL, key VARCHAR(64) NOT NULL, payload TEXT NOT NULL,"
    " created_at TIMESTAMPTZ NOT NULL, published_at TIMESTAMPTZ,"
    " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT) WITH (fillfactor = 45)",
    "CREATE INDEX ix_outbox_unpublished ON outbox (id) WHERE published_at IS NULL",
    "CREATE INDEX ix_outbox_sent_key ON outbox (key, id) WHERE published_at IS NOT NULL",
)
# rows as a consumer's batch writes them: ~600 bytes of payload, keys spread
WRITE = (
    "INSERT INTO outbox (event_id, topic, key, payload, created_at)"
    " SELECT gen_random_uuid()::text, 'hotline.sla', 'TJ' || (($1::bigint * 1000 + g) % 997),"
    " $2, now() FROM generate_series(1, $3) g"
)
SYNCHRONOUS_COMMIT = os.environ.get("BENCH_SYNCHRONOUS_COMMIT", "on")
PAYLOAD = '{"type": "sla.deadline_set", "payload": {"note": "' + "z" * 560 + '"}}'


class Sink:
    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        pass


def cpu_ns(pids: list[int]) -> int:
    return sum(int(Path(f"/proc/{p}/schedstat").read_text().split()[0]) for p in pids)


async def measure(url: str, rows: int, batches: int) -> dict[str, Any]:
    plain = url.replace("postgresql+asyncpg", "postgresql")
    name = plain.rpartition("/")[2]
    # pg_stat_statements' functions live in the server's ``postgres`` database
    server = pg_url().replace("postgresql+asyncpg", "postgresql").rpartition("/")[0]
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    # as bench/e2e.py runs it (BENCH_SYNCHRONOUS_COMMIT): a commit waits for its WAL flush
    await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {SYNCHRONOUS_COMMIT}')
    writer = await asyncpg.connect(plain, server_settings={"search_path": SCHEMA})
    db = Database(SCHEMA, url, pool_size=2)
    try:
        for statement in DDL:
            await writer.execute(statement)
        relay = OutboxRelay(db, Sink(), batch_size=rows)  # type: ignore[arg-type]
        await relay.relay_once()  # its connection opened, its statements prepared
        dbid = await admin.fetchval("SELECT oid FROM pg_database WHERE datname = $1", name)
        mine = await writer.fetchval("SELECT pg_backend_pid()")
        cpu = wal = 0
        executed = 0.0  # ms
        for batch in range(batches):
            await writer.execute(WRITE, batch, PAYLOAD, rows)
            await admin.execute("SELECT pg_stat_statements_reset(0, $1::oid, 0)", dbid)
            pids = [
                r[0]
                for r in await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2"
                    " AND backend_type = 'client backend'",
                    name,
                    mine,
                )
            ]
            before = cpu_ns(pids)
            assert await relay.relay_once() == rows
            cpu += cpu_ns(pids) - before
            stats = await admin.fetchrow(
                "SELECT coalesce(sum(wal_records), 0), coalesce(sum(total_exec_time), 0)"
                " FROM pg_stat_statements WHERE dbid = $1",
                dbid,
            )
            wal += stats[0]
            executed += stats[1]
        sent = rows * batches
        return {
            "rows_per_batch": rows,
            "batches": batches,
            "backend_us_per_row": round(cpu / 1000 / sent, 2),
            "wal_records_per_row": round(int(wal) / sent, 2),
            "executed_us_per_row": round(executed * 1000 / sent, 2),
        }
    finally:
        await db.dispose()
        await writer.close()
        await admin.close()


async def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    async with scratch_database() as url:
        print(json.dumps(await measure(url, rows, batches), indent=1))


if __name__ == "__main__":
    asyncio.run(main())
