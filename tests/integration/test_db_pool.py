"""The pool of a service's database on the real PostgreSQL: connections opened for a
burst of concurrent work are kept for the next one, not closed and opened again (each new
one costs PostgreSQL a process and a SCRAM login, and asyncpg its type introspection and
every prepared statement); and the few kept checked out between uses by the hot paths
(``driver_connection``, ``kept_transaction``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import Column, MetaData, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, UTCDateTime, in_transaction

pytestmark = pytest.mark.integration


async def _burst(db: Database, width: int) -> set[int]:
    """``width`` connections in use at once; the backend process of each."""
    entered = asyncio.Barrier(width)

    async def one() -> int:
        async with db.engine.connect() as conn:
            pid = int(await conn.scalar(text("SELECT pg_backend_pid()")))
            await entered.wait()  # every connection is out of the pool at once
            return pid

    return set(await asyncio.gather(*(one() for _ in range(width))))


async def test_connections_opened_for_a_burst_serve_the_next_burst(pg_url: str) -> None:
    db = Database("pooled", pg_url, pool_size=2)
    try:
        first = await _burst(db, 4)  # as many at once as the pool allows
        second = await _burst(db, 4)
        third = await _burst(db, 4)
    finally:
        await db.dispose()
    assert len(first) == 4
    assert second | third == first, "connections were closed and opened again"


@pytest_asyncio.fixture
async def kept(pg_url: str) -> AsyncIterator[Database]:
    db = Database("kept", pg_url, pool_size=2)  # one connection kept at most
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA kept"))
        await conn.execute(text("CREATE TABLE kept.facts (n integer PRIMARY KEY)"))
    try:
        yield db
    finally:
        await db.dispose()


async def _facts(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT n FROM facts ORDER BY n"))).scalars())


async def _driver(conn: AsyncConnection) -> Any:
    raw = await in_transaction(conn)
    assert raw is not None, "the transaction is not begun on the driver"
    return raw


async def _pid(db: Database) -> int:
    async with db.driver_connection() as (_, raw):
        return int(await raw.fetchval("SELECT pg_backend_pid()"))


async def test_kept_transactions_commit_on_one_connection_kept_between_them(
    kept: Database,
) -> None:
    pids = set()
    for n in range(3):
        async with kept.kept_transaction() as conn:
            raw = await _driver(conn)
            pids.add(await raw.fetchval("SELECT pg_backend_pid()"))
            await raw.execute("INSERT INTO facts VALUES ($1)", n)
    async with kept.kept_transaction() as conn:  # a statement through SQLAlchemy joins it
        await conn.execute(text("INSERT INTO facts VALUES (3)"))
        await (await _driver(conn)).execute("INSERT INTO facts VALUES (4)")
    assert await _facts(kept) == [0, 1, 2, 3, 4]
    assert len(pids) == 1
    assert kept.engine.pool.checkedout() == 1, "the connection was not kept"  # type: ignore[attr-defined]
    async with kept.driver_connection() as (conn, raw):
        assert not raw.is_in_transaction() and not conn.in_transaction()


async def test_a_kept_transaction_that_fails_leaves_nothing(kept: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with kept.kept_transaction() as conn:
            await (await _driver(conn)).execute("INSERT INTO facts VALUES (1)")
            1 / 0  # noqa: B018 - the handler's failure
    with pytest.raises(ZeroDivisionError):
        async with kept.kept_transaction() as conn:
            await conn.execute(text("INSERT INTO facts VALUES (2)"))
            1 / 0  # noqa: B018
    with pytest.raises(asyncpg.UniqueViolationError):  # fails at the statement
        async with kept.kept_transaction() as conn:
            raw = await _driver(conn)
            await raw.execute("INSERT INTO facts VALUES (3)")
            await raw.execute("INSERT INTO facts VALUES (3)")
    async with kept.driver_connection() as (conn, _):  # left open through SQLAlchemy
        await conn.execute(text("INSERT INTO facts VALUES (4)"))
    async with kept.kept_transaction() as conn:
        await (await _driver(conn)).execute("INSERT INTO facts VALUES (5)")
    assert await _facts(kept) == [5]


async def test_a_kept_connection_the_server_closed_is_replaced(kept: Database) -> None:
    async with kept.driver_connection() as (_, raw):
        gone, closed = await raw.fetchval("SELECT pg_backend_pid()"), raw
    async with kept.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": gone})
    for _ in range(500):  # until the driver reads that the server closed it
        if closed.is_closed():
            break
        await asyncio.sleep(0.01)
    async with kept.kept_transaction() as conn:
        await (await _driver(conn)).execute("INSERT INTO facts VALUES (1)")
    assert await _facts(kept) == [1]
    assert await _pid(kept) != gone


async def test_a_kept_connection_broken_mid_transaction_is_discarded(kept: Database) -> None:
    gone = await _pid(kept)
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        async with kept.kept_transaction() as conn:
            raw = await _driver(conn)
            await raw.execute("INSERT INTO facts VALUES (1)")
            await raw.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    async with kept.kept_transaction() as conn:
        await (await _driver(conn)).execute("INSERT INTO facts VALUES (2)")
    assert await _facts(kept) == [2]
    assert await _pid(kept) != gone


async def test_scalar_reads_the_first_value_through_its_column_type(kept: Database) -> None:
    stamps = Table("stamps", MetaData(), Column("at", UTCDateTime))
    first = select(func.min(stamps.c.at))
    async with kept.engine.begin() as conn:
        await conn.run_sync(stamps.metadata.create_all)
    assert await kept.scalar(first) is None
    at = datetime(2026, 12, 4, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    async with kept.engine.begin() as conn:
        await conn.execute(insert(stamps), [{"at": at}, {"at": at + timedelta(hours=1)}])
    found = await kept.scalar(first)
    assert found == at and found.tzinfo is UTC
    assert kept.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
