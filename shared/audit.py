"""Tamper-evident audit logs (Art 28, 29): each row carries the hash of the row before it
and its own hash over its content, so editing or deleting a row breaks the chain from that
row on. ``python -m shared.audit verify <service> <table>`` checks a chain and names the
first broken row.

What it does not catch on its own: rows cut from the end (keep the latest hash elsewhere,
e.g. print it into the operations log each day) and a rewrite of the whole chain by someone
holding write access to the database."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Column, String, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

GENESIS = "0" * 64
_CHAIN_COLUMNS = ("id", "prev_hash", "hash")


def chain_columns() -> list[Column[Any]]:
    return [Column("prev_hash", String(64)), Column("hash", String(64))]


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def row_hash(prev_hash: str, values: Mapping[str, Any]) -> str:
    content = {str(k): _canonical(v) for k, v in values.items() if k not in _CHAIN_COLUMNS}
    payload = prev_hash.encode() + orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(payload).hexdigest()


async def lock_chain(conn: AsyncConnection, table: Table) -> None:
    """Take the chain's append lock for the rest of the caller's transaction (PostgreSQL;
    SQLite writes one at a time anyway); taken again by the same transaction, it is held."""
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"audit:{table.schema}.{table.name}".encode())
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def append_chained(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` at the end of the chain, in the caller's transaction. Appends are
    serialised (PostgreSQL: a transaction lock per table; SQLite writes one at a time)."""
    if not rows:
        return
    await lock_chain(conn, table)
    prev = (await conn.scalar(select(table.c.hash).order_by(table.c.id.desc()).limit(1))) or GENESIS
    chained = []
    for row in rows:
        digest = row_hash(prev, row)
        chained.append({**row, "prev_hash": prev, "hash": digest})
        prev = digest
    await conn.execute(insert(table), chained)


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    first_broken_id: int | None
    reason: str = ""
    last_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


async def verify_chain(conn: AsyncConnection, table: Table, batch: int = 5000) -> ChainCheck:
    prev = GENESIS
    count = 0
    last_id = 0
    while True:
        rows = (
            await conn.execute(
                select(table).where(table.c.id > last_id).order_by(table.c.id).limit(batch)
            )
        ).all()
        if not rows:
            return ChainCheck(count, None, last_hash=prev)
        for row in rows:
            values = dict(row._mapping)
            if values["prev_hash"] != prev:
                return ChainCheck(count, row.id, "does not follow the row before it")
            if values["hash"] != row_hash(prev, values):
                return ChainCheck(count, row.id, "its content was changed")
            prev = values["hash"]
            count += 1
            last_id = row.id


async def _verify_cli(service: str, table_name: str) -> int:
    from sqlalchemy import MetaData

    from shared.db import Database
    from shared.settings import get_settings

    db = Database(service, get_settings().db_url)
    try:
        async with db.engine.connect() as conn:
            metadata = MetaData()
            table = await conn.run_sync(
                lambda sync: Table(table_name, metadata, autoload_with=sync)
            )
            check = await verify_chain(conn, table)
    finally:
        await db.dispose()
    if check.ok:
        print(
            f"{service}.{table_name}: chain intact, {check.rows} rows, last hash {check.last_hash}"
        )
        return 0
    print(
        f"{service}.{table_name}: chain BROKEN at row id {check.first_broken_id} "
        f"({check.reason}); {check.rows} rows before it verify"
    )
    return 1


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "verify":
        print("usage: python -m shared.audit verify <service> <table>", file=sys.stderr)
        return 2
    return asyncio.run(_verify_cli(argv[1], argv[2]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
