"""The migrations of issue 12 that leave a hot table one index entry fewer a row written, both
ways, on SQLite (and, through ``index_migration_both_ways``, on PostgreSQL in
tests/integration): the outbox's index by key holds the sent rows only, SLA's two board
indexes of running clocks become one, evaluation's indexes of acceptances and of flagged
tickets hold the accepted handlings and the flagged tickets only. What reads them:
tests/unit/sla/test_outbox_retention.py (the timeline), test_clock_lifecycle.py (the
board), tests/unit/evaluation (the scores, the flagged tickets)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db import Database
from tests.unit.shared.test_outbox_migrations import _to


@dataclass(frozen=True)
class IndexChange:
    """A migration (``revision``, after ``before``) of ``table``'s ``ix_`` indexes: the
    predicate of each before and after it (None: the index holds every row)."""

    service: str
    revision: str
    before: str
    table: str
    old: dict[str, str | None]
    new: dict[str, str | None]


OUTBOX_BEFORE = {"ix_outbox_unpublished": "published_at is null", "ix_outbox_key": None}
OUTBOX_AFTER = {
    "ix_outbox_unpublished": "published_at is null",
    "ix_outbox_sent_key": "published_at is not null",
}
CHANGES = [
    *(
        IndexChange(
            service,
            f"{service}_{n:04d}",
            f"{service}_{n - 1:04d}",
            "outbox",
            OUTBOX_BEFORE,
            OUTBOX_AFTER,
        )
        for service, n in (
            ("intake", 14),
            ("dispatch", 12),
            ("sla", 9),
            ("evaluation", 10),
            ("channels", 7),
            ("knowledge", 9),
        )
    ),
    IndexChange(
        "sla",
        "sla_0010",
        "sla_0009",
        "clocks",
        {
            "ix_clocks_next_due": "next_due_at is not null",
            "ix_clocks_warn_open": "stopped_at is null",
            "ix_clocks_deadline_open": "stopped_at is null",
        },
        {
            "ix_clocks_next_due": "next_due_at is not null",
            "ix_clocks_attention": "stopped_at is null",
        },
    ),
    IndexChange(
        "evaluation",
        "evaluation_0011",
        "evaluation_0010",
        "handlings",
        {"ix_handlings_dispatched": None, "ix_handlings_accepted": None},
        {"ix_handlings_dispatched": None, "ix_handlings_accepted": "accepted_at is not null"},
    ),
    # PostgreSQL: the dispatch times' index becomes a BRIN (its method: tests/integration/
    # test_hot_table_indexes.py); the same rows either way
    IndexChange(
        "evaluation",
        "evaluation_0014",
        "evaluation_0013",
        "handlings",
        {"ix_handlings_dispatched": None, "ix_handlings_accepted": "accepted_at is not null"},
        {"ix_handlings_dispatched": None, "ix_handlings_accepted": "accepted_at is not null"},
    ),
    IndexChange(
        "evaluation",
        "evaluation_0012",
        "evaluation_0011",
        "tickets",
        {"ix_tickets_matter_district_time": None, "ix_tickets_flagged": None},
        {"ix_tickets_matter_district_time": None, "ix_tickets_flagged": "flagged is true"},
    ),
]
CHANGE_IDS = [change.revision for change in CHANGES]


def _predicate(definition: str) -> str | None:
    """The WHERE of a CREATE INDEX statement as the database keeps it, normalised."""
    found = re.search(r"\bWHERE\b(.*)$", definition, re.IGNORECASE | re.DOTALL)
    if found is None:
        return None
    return " ".join(re.sub(r"[()\"]", " ", found.group(1)).split()).lower()


async def index_predicates(db: Database, table: str) -> dict[str, str | None]:
    """The table's ``ix_`` indexes and the predicate of each (None: every row)."""
    if db.is_postgres:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"
        query += " AND schemaname = current_schema()"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(query), {"t": table})).all()
    return {name: _predicate(sql) for name, sql in rows if name.startswith("ix_")}


async def index_migration_both_ways(db: Database, change: IndexChange) -> None:
    await _to(db, "upgrade", change.before)
    assert await index_predicates(db, change.table) == change.old
    await _to(db, "upgrade", change.revision)
    assert await index_predicates(db, change.table) == change.new
    await _to(db, "downgrade", change.before)
    assert await index_predicates(db, change.table) == change.old


@pytest.mark.parametrize("change", CHANGES, ids=CHANGE_IDS)
async def test_the_hot_tables_lose_an_index_entry_a_row_and_get_it_back(
    tmp_path: Path, change: IndexChange
) -> None:
    db = Database(change.service, f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    try:
        await index_migration_both_ways(db, change)
    finally:
        await db.dispose()
