"""Each service's migration that drops the inbox's ``processed_at`` and its index, both ways,
on PostgreSQL (the same checks as on SQLite in tests/unit/shared/test_outbox_migrations.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import Database
from tests.unit.shared.test_outbox_migrations import DROPS_PROCESSED_AT, inbox_migration_both_ways

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", sorted(DROPS_PROCESSED_AT))
async def test_the_inbox_loses_its_handled_time_and_gets_it_back(pg_url: str, service: str) -> None:
    db = Database(service, pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{service}"'))
        await inbox_migration_both_ways(db, *DROPS_PROCESSED_AT[service])
    finally:
        await db.dispose()
