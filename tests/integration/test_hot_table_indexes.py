"""The migrations that leave a hot table one index entry fewer a row written, both ways, on
PostgreSQL (the same checks as on SQLite in tests/unit/shared/test_index_migrations.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import Database
from tests.unit.shared.test_index_migrations import (
    CHANGE_IDS,
    CHANGES,
    IndexChange,
    index_migration_both_ways,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
async def test_the_hot_tables_lose_an_index_entry_a_row_and_get_it_back(
    pg_url: str, change: IndexChange
) -> None:
    db = Database(change.service, pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{change.service}"'))
        await index_migration_both_ways(db, change)
    finally:
        await db.dispose()
