"""PostgreSQL's work on ``ticket_words``' GIN index (issue 12) under three settings of the
index, written alike: fastupdate on (the default; the words go to a pending list that a
later insert, VACUUM or ``gin_clean_pending_list`` merges into the index), on with a
larger pending list, and off (each word into the index at once). The e2e load's tickets'
words (``search_terms`` of ``e2e.ticket_bodies``) are inserted in batches as intake's
statement does, the three tables' batches alternated, autovacuum off on them; at the end
each table's pending list is merged (timed), so a setting's cost is its inserts' and its
merges' together. PostgreSQL's time is read from pg_stat_statements (scratch database's
scope).

    python bench/gin_words.py [tickets] [batch size] [rounds]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's). Prints JSON: µs of
PostgreSQL a ticket (inserts, merge, total) and WAL records a ticket, for each setting and
round, and the medians."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

import asyncpg
from e2e import ticket_bodies  # bench/ holds this script: its neighbour
from knowledge_search import scratch_database

from services.intake.domain import search_terms

SETTINGS = {
    "on_4MB": "fastupdate = on",
    "on_4MB_sorted": "fastupdate = on",
    "on_32MB": "fastupdate = on, gin_pending_list_limit = 32768",
}
# the words given in byte order (as the index keeps them), not as search_terms yields them
SORTED = {"on_4MB_sorted"}


async def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    bodies = ticket_bodies(tickets, seed=7)
    words = [" ".join(search_terms(b["content"])) for b in bodies]
    ordered = [" ".join(sorted(search_terms(b["content"]))) for b in bodies]
    found: dict[str, dict[str, list[float]]] = {
        s: {"insert_us": [], "merge_us": [], "total_us": [], "wal": []} for s in SETTINGS
    }
    async with scratch_database() as url:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        database = url.rpartition("/")[2]
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for _ in range(rounds):
                for name, setting in SETTINGS.items():
                    await conn.execute(f"DROP TABLE IF EXISTS w_{name}")
                    await conn.execute(
                        f"CREATE TABLE w_{name} (ticket_pk integer PRIMARY KEY,"
                        ' terms text[] COLLATE "C" NOT NULL) WITH (autovacuum_enabled = false)'
                    )
                    await conn.execute(
                        f"CREATE INDEX ix_w_{name} ON w_{name} USING gin (terms) WITH ({setting})"
                    )
                await conn.execute(
                    "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
                    " WHERE datname = $1), 0)",
                    database,
                )
                merge: dict[str, float] = {}
                for start in range(0, tickets, size):
                    ids = list(range(start, min(start + size, tickets)))
                    for name in SETTINGS:
                        await conn.execute(
                            f"INSERT INTO w_{name} (ticket_pk, terms) SELECT w.id,"
                            " string_to_array(w.terms, ' ') FROM unnest($1::bigint[], $2::text[])"
                            " AS w(id, terms)",
                            ids,
                            [(ordered if name in SORTED else words)[i] for i in ids],
                        )
                for name in SETTINGS:
                    t0 = time.perf_counter()
                    await conn.execute(f"SELECT gin_clean_pending_list('ix_w_{name}')")
                    merge[name] = (time.perf_counter() - t0) * 1e6 / tickets
                rows = await conn.fetch(
                    "SELECT query, total_exec_time, wal_records FROM pg_stat_statements"
                    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
                    database,
                )
                for name in SETTINGS:
                    ms = sum(r[1] for r in rows if r[0].startswith(f"INSERT INTO w_{name} "))
                    wal = sum(r[2] for r in rows if r[0].startswith(f"INSERT INTO w_{name} "))
                    found[name]["insert_us"].append(ms * 1000 / tickets)
                    found[name]["merge_us"].append(merge[name])
                    found[name]["total_us"].append(ms * 1000 / tickets + merge[name])
                    found[name]["wal"].append(wal / tickets)
        finally:
            await conn.close()
    print(
        json.dumps(
            {
                "tickets": tickets,
                "batch": size,
                "words_a_ticket": round(sum(len(w.split()) for w in words) / tickets, 1),
                **{
                    name: {k: _median_and_all(v) for k, v in figures.items()}
                    for name, figures in found.items()
                },
            },
            indent=1,
        )
    )


def _median_and_all(values: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(values), 2), "all": [round(x, 2) for x in values]}


if __name__ == "__main__":
    asyncio.run(main())
