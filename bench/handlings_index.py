"""PostgreSQL's cost of evaluation's handlings index by dispatch time (issue 12): a B-tree
(``ix_handlings_dispatched`` before evaluation_0014) against a BRIN, on two copies of the
table in a scratch database, written alike: batches of handlings in dispatch-time order
(as the consumer writes them), the two tables' batches alternating so both meet the same
host. Each table's insert statement is read from pg_stat_statements (reset in the scratch
database's scope): PostgreSQL's time and WAL records a row. Then the scores' read of a
period (``load_handlings``: dispatched or accepted in it) on each, EXPLAIN ANALYZE.

    python bench/handlings_index.py [rows] [batch]

Needs PostgreSQL with pg_stat_statements loaded (``HOTLINE_PG_URL``, else
scripts/postgres.sh's; the extension is read from the ``hotline`` database). Prints JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
from knowledge_search import pg_url  # bench/ holds this script: its neighbour

SCRATCH = "bench_handlings_index"
TABLE = (
    "CREATE TABLE {t} (ticket_id varchar(32), round int, dispatch_no int,"
    " unit_id varchar(40) NOT NULL, matter_code varchar(40) NOT NULL,"
    " district varchar(12) NOT NULL, dispatched_at timestamptz NOT NULL,"
    " accepted_at timestamptz, completed_at timestamptz, returned_at timestamptz,"
    " PRIMARY KEY (ticket_id, round, dispatch_no))"
)
INDEXES = {
    "btree": "CREATE INDEX {t}_dispatched ON {t} (dispatched_at)",
    "brin": "CREATE INDEX {t}_dispatched ON {t} USING brin (dispatched_at)",
}
INSERT = (
    "INSERT INTO {t} (ticket_id, round, dispatch_no, unit_id, matter_code, district,"
    " dispatched_at) SELECT id, 1, 1, 'U-120104-01', 'M-WATER-01', '120104', at"
    " FROM unnest($1::text[], $2::timestamptz[]) AS v(id, at)"
)
PERIOD = (
    "SELECT * FROM {t} WHERE (dispatched_at >= $1 AND dispatched_at < $2)"
    " OR (accepted_at >= $1 AND accepted_at < $2)"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def main(rows: int, batch: int) -> dict[str, object]:
    admin_url = pg_url().replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}"')
    await admin.execute(f'CREATE DATABASE "{SCRATCH}"')
    base = admin_url.rsplit("/", 1)[0]
    stats = await asyncpg.connect(f"{base}/hotline")
    pg = await asyncpg.connect(f"{base}/{SCRATCH}")
    try:
        for kind, index in INDEXES.items():
            await pg.execute(TABLE.format(t=kind))
            await pg.execute(index.format(t=kind))
            # the acceptances' index as evaluation_0011 made it
            await pg.execute(
                f"CREATE INDEX {kind}_accepted ON {kind} (accepted_at)"
                " WHERE accepted_at IS NOT NULL"
            )
        dbid = "(SELECT oid FROM pg_database WHERE datname = $1)"
        await stats.execute(f"SELECT pg_stat_statements_reset(0, {dbid}, 0)", SCRATCH)
        step = timedelta(days=100) / rows  # 100 days of a city's handlings
        for start in range(0, rows, batch):
            ids = [f"12345-{n:08d}" for n in range(start, min(rows, start + batch))]
            ats = [T0 + step * n for n in range(start, start + len(ids))]
            order = INDEXES if (start // batch) % 2 == 0 else reversed(list(INDEXES))
            for kind in order:
                await pg.execute(INSERT.format(t=kind), ids, ats)
        # a tenth of them accepted an hour after dispatch (the acceptances' index)
        for kind in INDEXES:
            await pg.execute(
                f"UPDATE {kind} SET accepted_at = dispatched_at + interval '1 hour'"
                " WHERE right(ticket_id, 1) = '0'"
            )
            await pg.execute(f"VACUUM ANALYZE {kind}")
        found = await stats.fetch(
            "SELECT query, calls, total_exec_time, wal_records FROM pg_stat_statements"
            f" WHERE dbid = {dbid} AND query LIKE 'INSERT INTO %'",
            SCRATCH,
        )
        inserts = {
            r["query"].split()[2]: {
                "us_per_row": round(r["total_exec_time"] * 1000 / rows, 2),
                "wal_per_row": round(r["wal_records"] / rows, 2),
            }
            for r in found
        }
        reads = {}
        for label, days in (("a day", 1), ("a month", 30)):
            start_at = T0 + timedelta(days=50)
            for kind in INDEXES:
                plan = await pg.fetchval(
                    f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {PERIOD.format(t=kind)}",
                    start_at,
                    start_at + timedelta(days=days),
                )
                top = json.loads(plan)[0]
                reads[f"{label} {kind}"] = {
                    "ms": round(top["Execution Time"], 2),
                    "rows": top["Plan"]["Actual Rows"],
                    "buffers": top["Plan"].get("Shared Hit Blocks", 0)
                    + top["Plan"].get("Shared Read Blocks", 0),
                    "nodes": _nodes(top["Plan"]),
                }
        sizes = {
            kind: await pg.fetchval(f"SELECT pg_relation_size('{kind}_dispatched')")
            for kind in INDEXES
        }
        return {
            "rows": rows,
            "batch": batch,
            "insert": inserts,
            "index_bytes": sizes,
            "reads": reads,
        }
    finally:
        await pg.close()
        await stats.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}"')
        await admin.close()


def _nodes(plan: dict[str, object]) -> str:
    name = f"{plan['Node Type']}" + (f" {plan['Index Name']}" if "Index Name" in plan else "")
    kids = [_nodes(p) for p in plan.get("Plans", [])]  # type: ignore[union-attr]
    return name + (f" [{', '.join(kids)}]" if kids else "")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    rows, batch = (args + [100_000, 100][len(args) :])[:2]
    print(json.dumps(asyncio.run(main(rows, batch)), indent=1, ensure_ascii=False))
