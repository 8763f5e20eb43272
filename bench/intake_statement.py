"""PostgreSQL's work on intake's batch statement (issue 12): registrations written in
batches through ``_write_batch`` (the service's own path, hints looked up, nonces recorded)
into a scratch database, with two versions of the statement alternated batch by batch in
one process, so both meet the same tables and the same host. Each version's cost is read
from pg_stat_statements (reset in the scratch database's scope): PostgreSQL's time and WAL
records a ticket.

    python bench/intake_statement.py [variant] [batch size] [batches] [rounds]

``variant``: ``nonces`` (the first try's nonces inserted plainly, against ON CONFLICT DO
NOTHING); ``keys`` (the batch's Idempotency-Keys inserted though it has none, as every
batch did before, against a batch without keys going without); ``tree`` (another tree's
first statement, ``BENCH_A_TREE`` its root, against this tree's: the two must take the
same parameters). Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's). Prints JSON."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
from typing import Any

import asyncpg
from intake_batch import items  # bench/ holds this script: its neighbour
from knowledge_search import pg_url, scratch_database

from services.intake.handlers import registration as reg
from tests.integration.test_intake_batches import pg_intake

VARIANTS = {
    # (A, B): the batch's first statement, and whether its rows are taken for keyed (None:
    # as they are)
    "nonces": ((reg._WRITE_BATCH[True, False], None), (reg._WRITE_NEW_NONCES[False], None)),
    "keys": ((reg._WRITE_NEW_NONCES[True], True), (reg._WRITE_NEW_NONCES[False], None)),
}
# what tells each variant's statement in pg_stat_statements (which shows its text with the
# constants replaced): a part of A's text that B's lacks
TOLD_BY = {
    "nonces": "ON CONFLICT DO NOTHING RETURNING nonce",
    "keys": "INSERT INTO idempotency_keys",
}


def _told_apart(a: str, b: str) -> str:
    """A part of ``a``'s text that ``b`` lacks: around where the two first differ."""
    pairs = enumerate(zip(a, b, strict=False))  # (the shorter's length if one begins the other)
    at = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    for width in range(10, len(a) + 1, 10):
        part = a[max(0, at - width) : at + width]
        if part not in b:
            return part
    raise SystemExit("the trees' statements are the same")


# ``tree``: A another tree's first statement, B this tree's (BENCH_A_TREE: that tree's
# root; its statement is read by running its Python there), told apart by their first words
if os.environ.get("BENCH_A_TREE"):
    _other = subprocess.run(
        [
            f"{os.environ['BENCH_A_TREE']}/.venv/bin/python",
            "-c",
            "from services.intake.handlers import registration as r;"
            " s = r._WRITE_NEW_NONCES; print(s[False] if isinstance(s, dict) else s)",
        ],
        cwd=os.environ["BENCH_A_TREE"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    VARIANTS["tree"] = ((_other, None), (reg._WRITE_NEW_NONCES[False], None))
    TOLD_BY["tree"] = _told_apart(_other, reg._WRITE_NEW_NONCES[False])


async def stats(admin: str, database: str, told_by: str) -> dict[str, list[float]]:
    """(ms, WAL records, calls) of the batch statement's two versions (A, B)."""
    pg = await asyncpg.connect(admin)
    try:
        rows = await pg.fetch(
            "SELECT query, total_exec_time, wal_records, calls FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
            database,
        )
    finally:
        await pg.close()
    found = {"A": [0.0, 0.0, 0.0], "B": [0.0, 0.0, 0.0]}
    for r in rows:
        if r[0].startswith("WITH hinted") or r[0].startswith("WITH t AS"):
            for i in range(3):
                found["A" if told_by in r[0] else "B"][i] += r[i + 1]
    return found


async def reset(admin: str, database: str) -> None:
    pg = await asyncpg.connect(admin)
    try:
        await pg.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = $1))",
            database,
        )
    finally:
        await pg.close()


async def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "nonces"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    batches = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    a, b = VARIANTS[variant]
    admin = pg_url().replace("postgresql+asyncpg", "postgresql")
    found: dict[str, dict[str, list[float]]] = {
        v: {"us_per_ticket": [], "wal_per_ticket": []} for v in "AB"
    }
    async with scratch_database() as url, pg_intake(url) as intake:
        database = url.rpartition("/")[2]
        serial = 0

        keyed = reg._BatchRows.keyed

        async def write(way: tuple[str, bool | None]) -> None:
            nonlocal serial
            statement, forced = way
            reg._WRITE_NEW_NONCES = {False: statement, True: statement}
            reg._BatchRows.keyed = keyed if forced is None else property(lambda _: forced)
            results = await reg._write_batch(intake.ctx, items(size, serial))
            assert not any(isinstance(r, Exception) for r in results), results
            serial += 1

        for _ in range(batches):  # warm-up: tables with a history, plans made
            await write(a)
            await write(b)
        for _ in range(rounds):
            await reset(admin, database)
            for _ in range(batches):
                await write(a)
                await write(b)
            by_version = await stats(admin, database, TOLD_BY[variant])
            for name in "AB":
                ms, wal, calls = by_version[name]
                tickets = calls * size
                found[name]["us_per_ticket"].append(ms * 1000 / tickets)
                found[name]["wal_per_ticket"].append(wal / tickets)
    print(json.dumps(summary(found, variant=variant, batch=size, batches=batches), indent=1))


def summary(found: dict[str, dict[str, list[float]]], **head: Any) -> dict[str, Any]:
    """``head`` and, for each way measured, each figure's median and its rounds."""
    result: dict[str, Any] = dict(head)
    for name, values in found.items():
        result[name] = {
            k: {"median": round(statistics.median(v), 2), "all": [round(x, 2) for x in v]}
            for k, v in values.items()
        }
    return result


if __name__ == "__main__":
    asyncio.run(main())
