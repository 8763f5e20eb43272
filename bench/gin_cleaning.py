"""PostgreSQL's work on ``ticket_words``' GIN index (issue 12) with its pending list merged
by the inserts that fill it (4 MB, ``gin_pending_list_limit``: one registration batch in
~5,000 merges the lot) against merged by ``gin_clean_pending_list`` every N tickets
(intake's background task, services/intake/handlers/words.py: every 2 s, ~2,000 tickets at
1,000/s). The e2e load's tickets' words, sorted as intake gives them, inserted in batches
as intake's statement does, the tables' batches alternated, autovacuum off on them; at the
end each table's pending list is merged, so a way's cost is its inserts' and its merges'
together, read from pg_stat_statements (scratch database's scope). Also the longest
statement of each way (the insert that merges, or a merge).

    python bench/gin_cleaning.py [tickets] [batch size] [rounds]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's). Prints JSON: µs of
PostgreSQL a ticket and WAL records a ticket for each way, each round, and the medians."""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg
from e2e import ticket_bodies  # bench/ holds this script: its neighbour
from gin_words import _median_and_all
from knowledge_search import scratch_database

from services.intake.domain import search_terms

# tickets between two merges by gin_clean_pending_list (0: the inserts merge at the limit)
WAYS = {"at_limit": 0, "every_2000": 2000, "every_1000": 1000}


async def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    bodies = ticket_bodies(tickets, seed=7)
    words = [" ".join(sorted(search_terms(b["content"]))) for b in bodies]
    found: dict[str, dict[str, list[float]]] = {
        w: {"us": [], "wal": [], "longest_ms": []} for w in WAYS
    }
    async with scratch_database() as url:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        database = url.rpartition("/")[2]
        scope = "(SELECT oid FROM pg_database WHERE datname = $1)"
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for _ in range(rounds):
                for name in WAYS:
                    await conn.execute(f"DROP TABLE IF EXISTS w_{name}")
                    await conn.execute(
                        f"CREATE TABLE w_{name} (ticket_pk integer PRIMARY KEY,"
                        ' terms text[] COLLATE "C" NOT NULL) WITH (autovacuum_enabled = false)'
                    )
                    await conn.execute(f"CREATE INDEX ix_w_{name} ON w_{name} USING gin (terms)")
                await conn.execute(f"SELECT pg_stat_statements_reset(0, {scope}, 0)", database)
                for start in range(0, tickets, size):
                    ids = list(range(start, min(start + size, tickets)))
                    for name, every in WAYS.items():
                        await conn.execute(
                            f"INSERT INTO w_{name} (ticket_pk, terms) SELECT w.id,"
                            " string_to_array(w.terms, ' ') FROM unnest($1::bigint[], $2::text[])"
                            " AS w(id, terms)",
                            ids,
                            [words[i] for i in ids],
                        )
                        if every and (start // every) != ((start + size) // every):
                            await conn.execute(_merge(name))
                for name in WAYS:
                    await conn.execute(_merge(name))
                rows = await conn.fetch(
                    "SELECT query, total_exec_time, max_exec_time, wal_records"
                    f" FROM pg_stat_statements WHERE dbid = {scope}",
                    database,
                )
                for name in WAYS:
                    mine = [r for r in rows if f"w_{name} " in r[0] or r[0] == _merge(name, True)]
                    found[name]["us"].append(sum(r[1] for r in mine) * 1000 / tickets)
                    found[name]["wal"].append(sum(r[3] for r in mine) / tickets)
                    found[name]["longest_ms"].append(max(r[2] for r in mine))
        finally:
            await conn.close()
    ways = {name: {k: _median_and_all(v) for k, v in of.items()} for name, of in found.items()}
    print(json.dumps({"tickets": tickets, "batch": size, **ways}, indent=1))


def _merge(name: str, normalized: bool = False) -> str:
    """The way's merge statement: one pg_stat_statements entry of its own (a way's own
    number of columns: the index's name alone would be normalized away)."""
    way = list(WAYS).index(name)
    index = "$1" if normalized else f"'ix_w_{name}'"
    return f"SELECT gin_clean_pending_list({index}::regclass)" + "".join(
        f", ${i + 2}" if normalized else f", {i}" for i in range(way)
    )


if __name__ == "__main__":
    asyncio.run(main())
