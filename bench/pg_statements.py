"""The statements of one database ranked by PostgreSQL's time and WAL (pg_stat_statements),
for bench/e2e.py's BENCH_STATEMENTS=N: reset in that database's scope only when the load
starts, read when it has settled. The shared server loads the extension; it is created in
the admin database (``postgres``), which can read and reset any database's entries."""

from __future__ import annotations

from typing import Any

import asyncpg

DBID = "(SELECT oid FROM pg_database WHERE datname = $1)"


async def reset(admin_dsn: str, database: str) -> None:
    pg = await asyncpg.connect(admin_dsn)
    try:
        await pg.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await pg.execute(f"SELECT pg_stat_statements_reset(0, {DBID}, 0)", database)
    finally:
        await pg.close()


async def ranked(admin_dsn: str, database: str, tickets: int, top: int) -> list[dict[str, Any]]:
    """The ``top`` statements by total execution time, then any others among the ``top`` by
    WAL records, each per ticket (µs, WAL records, calls) with its mean (µs a call)."""
    pg = await asyncpg.connect(admin_dsn)
    try:
        rows = await pg.fetch(
            "SELECT query, calls, total_exec_time + total_plan_time AS ms, rows, wal_records,"
            " wal_fpi, wal_bytes FROM pg_stat_statements WHERE dbid = " + DBID,
            database,
        )
    finally:
        await pg.close()
    n = max(tickets, 1)
    by_time = sorted(rows, key=lambda r: -r["ms"])[:top]
    by_wal = sorted(rows, key=lambda r: -r["wal_records"])[:top]
    chosen = by_time + [r for r in by_wal if r not in by_time]
    total_ms = sum(r["ms"] for r in rows)
    total_wal = sum(r["wal_records"] for r in rows)
    return [
        {
            "us_per_ticket_all": round(total_ms * 1000 / n, 1),
            "wal_per_ticket_all": round(total_wal / n, 2),
        }
    ] + [
        {
            "us_per_ticket": round(r["ms"] * 1000 / n, 2),
            "wal_per_ticket": round(r["wal_records"] / n, 2),
            "calls_per_ticket": round(r["calls"] / n, 3),
            "rows_per_call": round(r["rows"] / max(r["calls"], 1), 1),
            "us_per_call": round(r["ms"] * 1000 / max(r["calls"], 1), 1),
            "wal_fpi_per_ticket": round(r["wal_fpi"] / n, 2),
            "query": " ".join(r["query"].split())[:300],
        }
        for r in chosen
    ]
