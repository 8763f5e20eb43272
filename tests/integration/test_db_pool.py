"""The pool of a service's database on the real PostgreSQL: connections opened for a
burst of concurrent work are kept for the next one, not closed and opened again (each new
one costs PostgreSQL a process and a SCRAM login, and asyncpg its type introspection and
every prepared statement)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from shared.db import Database

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
