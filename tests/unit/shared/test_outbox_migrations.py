"""The migrations of each service's outbox and inbox for issue 12, both ways, on SQLite
(and, through ``inbox_migration_both_ways``, on PostgreSQL in tests/integration). The
outbox's event ids lose their unique key: SQLite rebuilds the table, and the rows and the
unsent rows' index come through, so what was waiting before a migration is sent after it.
The inbox loses ``processed_at`` and its index: it is pruned by when each event was made."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from shared.db import Database, UTCDateTime, migration_step, outbox_row
from shared.relay import OutboxRelay
from shared.settings import get_settings
from tests.conftest import ROOT, RecordingBus
from tests.unit.shared.test_outbox_inbox import claimed, envelope, made

# each service's migration and the revision before it
DROPS_THE_KEY = {
    "intake": ("intake_0011", "intake_0010"),
    "dispatch": ("dispatch_0010", "dispatch_0009"),
    "sla": ("sla_0007", "sla_0006"),
    "evaluation": ("evaluation_0008", "evaluation_0007"),
    "channels": ("channels_0005", "channels_0004"),
    "knowledge": ("knowledge_0007", "knowledge_0006"),
}


async def _to(db: Database, step: str, revision: str) -> None:
    migrations = ROOT / "services" / db.service / "migrations"
    async with db.engine.begin() as conn:
        await conn.run_sync(
            functools.partial(
                migration_step, script_location=str(migrations), step=step, revision=revision
            )
        )


async def _unsent(db: Database) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).where(db.outbox.c.published_at.is_(None))
        return await conn.scalar(query.select_from(db.outbox)) or 0


@pytest.mark.parametrize("service", sorted(DROPS_THE_KEY))
async def test_unsent_events_are_sent_after_the_migration_both_ways(
    tmp_path: Path, service: str
) -> None:
    revision, before = DROPS_THE_KEY[service]
    db = Database(service, f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    bus = RecordingBus()
    relay = OutboxRelay(db, bus)  # type: ignore[arg-type]
    try:
        await _to(db, "upgrade", before)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("A"))
        await _to(db, "upgrade", revision)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("B"))
        assert await _unsent(db) == 2
        assert await relay.relay_once() == 2

        await _to(db, "downgrade", before)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("C"))
        assert await relay.relay_once() == 1
        assert [e.payload["code"] for e in bus.published] == ["A", "B", "C"]
        sent = bus.published[0]
        with pytest.raises(IntegrityError):  # the downgrade's key is back
            async with db.engine.begin() as conn:
                await conn.execute(insert(db.outbox), [outbox_row(sent)])
    finally:
        await db.dispose()


# each service's migration that drops the inbox's processed_at, and the revision before it
DROPS_PROCESSED_AT = {
    "intake": ("intake_0012", "intake_0011"),
    "dispatch": ("dispatch_0011", "dispatch_0010"),
    "sla": ("sla_0008", "sla_0007"),
    "evaluation": ("evaluation_0009", "evaluation_0008"),
    "channels": ("channels_0006", "channels_0005"),
    "knowledge": ("knowledge_0008", "knowledge_0007"),
}
# the inbox before the migration (``Database.inbox`` is the one after it)
OLD_INBOX = sa.table(
    "inbox",
    sa.column("consumer", sa.String),
    sa.column("event_id", sa.String),
    sa.column("processed_at", UTCDateTime),
)
# ids that are not v7 (made before event ids were), whose random bits sort after any cutoff
V4_OLD, V4_LATELY = (f"ffffffff-ffff-4fff-bfff-fffffffffff{n}" for n in (0, 1))


async def _inbox_shape(db: Database) -> tuple[set[str], set[str]]:
    """The inbox's columns and the names of its indexes."""

    def shape(conn: sa.Connection) -> tuple[set[str], set[str]]:
        found = inspect(conn)
        return (
            {c["name"] for c in found.get_columns("inbox")},
            {str(i["name"]) for i in found.get_indexes("inbox")},
        )

    async with db.engine.connect() as conn:
        return await conn.run_sync(shape)


async def inbox_migration_both_ways(db: Database, revision: str, before: str) -> None:
    """Up: ``processed_at`` and its index go; the ids that are not v7 and were handled
    longer ago than the retention go with them (the old rule, once), the rest stay and are
    still repeats; the pruner then goes by when the v7 ones were made. Down: the column
    (every row counted as handled now) and the index are back."""
    now = datetime.now(UTC)
    retention = timedelta(seconds=get_settings().inbox_retention_seconds)
    long_ago, lately = now - retention - timedelta(days=1), now - timedelta(days=1)
    v7_old, v7_lately, v7_now = made(long_ago), made(lately), made(now)
    await _to(db, "upgrade", before)
    async with db.engine.begin() as conn:
        # made by Database.migrate until this change, after the migrations
        await conn.execute(sa.text("CREATE INDEX ix_inbox_processed_at ON inbox (processed_at)"))
        await conn.execute(
            insert(OLD_INBOX),
            [
                {"consumer": "sla", "event_id": i, "processed_at": at}
                for i, at in [
                    (v7_old, lately),  # made long ago, handled of late: the id's time counts
                    (v7_lately, lately),
                    (V4_OLD, long_ago),
                    (V4_LATELY, lately),
                ]
            ],
        )
    assert await _inbox_shape(db) == (
        {"consumer", "event_id", "processed_at"},
        {"ix_inbox_processed_at"},
    )

    await _to(db, "upgrade", revision)
    assert await _inbox_shape(db) == ({"consumer", "event_id"}, set())
    assert await claimed(db) == {v7_old, v7_lately, V4_LATELY}
    async with db.engine.begin() as conn:
        assert await db.claim(conn, "sla", [V4_LATELY, v7_lately, v7_now]) == {v7_now}
    assert await db.prune_inbox(now - retention) == 1
    assert await claimed(db) == {v7_lately, V4_LATELY, v7_now}

    await _to(db, "downgrade", before)
    assert await _inbox_shape(db) == (
        {"consumer", "event_id", "processed_at"},
        {"ix_inbox_processed_at"},
    )
    async with db.engine.begin() as conn:
        handled = await conn.execute(select(OLD_INBOX.c.processed_at))
        assert all(at >= now for at in handled.scalars())
        with pytest.raises(IntegrityError):  # NOT NULL, as before
            async with conn.begin_nested():
                await conn.execute(insert(OLD_INBOX).values(consumer="sla", event_id="e"))


@pytest.mark.parametrize("service", sorted(DROPS_PROCESSED_AT))
async def test_the_inbox_loses_its_handled_time_and_gets_it_back(
    tmp_path: Path, service: str
) -> None:
    db = Database(service, f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    try:
        await inbox_migration_both_ways(db, *DROPS_PROCESSED_AT[service])
    finally:
        await db.dispose()
