"""The planner's page cost on the services' PostgreSQL connections (shared/db.py
``RANDOM_PAGE_COST``): a batch's UPDATE joined to a table by its key (``update_many``'s
statement) keeps a generic plan through the key even when it is made on a near-empty table
that was never analyzed, as each connection makes it at a statement's sixth execution."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from shared.db import RANDOM_PAGE_COST, Database, _compiled, _update_from_arrays_once

pytestmark = pytest.mark.integration

ROWS = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("row_id", sa.String(32), primary_key=True),
    sa.Column("unit_id", sa.String(40)),
    sa.Column("round", sa.Integer, nullable=False),
)


async def _generic_plan(db: Database) -> str:
    """``update_many``'s statement for ``ROWS`` planned generically on a table of 40 rows."""
    async with db.driver_connection() as (conn, raw):
        await raw.execute('CREATE SCHEMA IF NOT EXISTS "planner"')
        await raw.execute(
            "CREATE TABLE IF NOT EXISTS rows (row_id varchar(32) PRIMARY KEY,"
            " unit_id varchar(40), round int NOT NULL) WITH (autovacuum_enabled = off)"
        )
        await raw.execute(
            "INSERT INTO rows SELECT 'T' || g, 'u', 1 FROM generate_series(1, 40) g"
            " ON CONFLICT DO NOTHING"
        )
        stmt = _update_from_arrays_once(ROWS, ("row_id",), ("unit_id", "round"))
        sql, _ = _compiled(stmt, conn.dialect)
        params = len(set(re.findall(r"\$(\d+)", sql)))
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE planned AS {sql}")
        plan = await raw.fetch(f"EXPLAIN EXECUTE planned({', '.join(['NULL'] * params)})")
        await raw.execute("DEALLOCATE planned")
        await raw.execute("RESET plan_cache_mode")
        return "\n".join(r[0] for r in plan)


async def test_the_services_connections_plan_a_batch_update_through_the_key(pg_url: str) -> None:
    db = Database("planner", pg_url)
    try:
        async with db.driver_connection() as (_, raw):
            assert float(await raw.fetchval("SHOW random_page_cost")) == RANDOM_PAGE_COST
        plan = await _generic_plan(db)
        assert "Index Scan using rows_pkey" in plan and "Seq Scan" not in plan, plan
    finally:
        await db.dispose()


async def test_without_the_setting_the_servers_cost_stays(pg_url: str) -> None:
    db = Database("planner", pg_url, random_page_cost=None)
    try:
        async with db.driver_connection() as (_, raw):
            server = await raw.fetchval(
                "SELECT boot_val FROM pg_settings WHERE name = $1", "random_page_cost"
            )
            assert await raw.fetchval("SHOW random_page_cost") == server
    finally:
        await db.dispose()
