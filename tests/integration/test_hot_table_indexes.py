"""The migrations that leave a hot table one index entry fewer a row written, both ways, on
PostgreSQL (the same checks as on SQLite in tests/unit/shared/test_index_migrations.py), and
those that make the inbox's ids compare by their bytes (PostgreSQL only)."""

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
from tests.unit.shared.test_outbox_inbox import forgets_the_events_made_before_the_cutoff
from tests.unit.shared.test_outbox_migrations import _to

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


# each service's migration that makes the inbox's ids compare by their bytes, and the one
# before it
INBOX_BYTEWISE = {
    "intake": ("intake_0015", "intake_0014"),
    "dispatch": ("dispatch_0013", "dispatch_0012"),
    "sla": ("sla_0011", "sla_0010"),
    "evaluation": ("evaluation_0013", "evaluation_0012"),
    "channels": ("channels_0008", "channels_0007"),
    "knowledge": ("knowledge_0010", "knowledge_0009"),
}


async def _inbox_collations(db: Database) -> dict[str, str | None]:
    query = (
        "SELECT column_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'inbox'"
    )
    async with db.engine.connect() as conn:
        return {name: collation for name, collation in (await conn.execute(text(query))).all()}


@pytest.mark.parametrize("service", sorted(INBOX_BYTEWISE))
async def test_the_inbox_ids_compare_bytewise_and_claims_and_pruning_go_on(
    pg_url: str, service: str
) -> None:
    revision, before = INBOX_BYTEWISE[service]
    db = Database(service, pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{service}"'))
        await _to(db, "upgrade", before)
        assert await _inbox_collations(db) == {"consumer": None, "event_id": None}
        await _to(db, "upgrade", revision)
        assert await _inbox_collations(db) == {"consumer": "C", "event_id": "C"}
        await forgets_the_events_made_before_the_cutoff(db)
        await _to(db, "downgrade", before)
        assert await _inbox_collations(db) == {"consumer": None, "event_id": None}
    finally:
        await db.dispose()
