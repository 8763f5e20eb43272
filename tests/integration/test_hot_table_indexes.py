"""The migrations that leave a hot table one index entry fewer a row written, both ways, on
PostgreSQL (the same checks as on SQLite in tests/unit/shared/test_index_migrations.py), and
those that make the inbox's ids compare by their bytes (PostgreSQL only), and those that give
a table's pages room for its rows' next versions (PostgreSQL only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.db import Database
from shared.relay import OutboxRelay
from tests.conftest import RecordingBus
from tests.unit.shared.test_index_migrations import (
    CHANGE_IDS,
    CHANGES,
    IndexChange,
    index_migration_both_ways,
)
from tests.unit.shared.test_outbox_inbox import forgets_the_events_made_before_the_cutoff
from tests.unit.shared.test_outbox_migrations import _to
from tests.unit.test_set_based_consumers import registered

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


async def _access_method(db: Database, index: str) -> str | None:
    query = (
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relname = :i"
    )
    async with db.engine.connect() as conn:
        return (await conn.execute(text(query), {"i": index})).scalar()


async def test_the_handlings_dispatch_times_are_a_brin_index_the_scores_period_reads(
    pg_url: str,
) -> None:
    db = Database("evaluation", pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text('CREATE SCHEMA "evaluation"'))
        await _to(db, "upgrade", "evaluation_0013")
        assert await _access_method(db, "ix_handlings_dispatched") == "btree"
        await _to(db, "upgrade", "evaluation_0014")
        assert await _access_method(db, "ix_handlings_dispatched") == "brin"
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO handlings (ticket_id, round, dispatch_no, unit_id, matter_code,"
                    " district, dispatched_at) SELECT 'T' || n, 1, 1, 'U', 'M', 'D',"
                    " timestamptz '2026-01-01 00:00Z' + n * interval '1 minute'"
                    " FROM generate_series(1, 20000) AS n"
                )
            )
            await conn.execute(text("ANALYZE handlings"))
            start = datetime(2026, 1, 5, tzinfo=UTC)
            period = {"start": start, "end": start + timedelta(days=1)}
            read = (
                "SELECT count(*) FROM handlings WHERE (dispatched_at >= :start"
                " AND dispatched_at < :end) OR (accepted_at >= :start AND accepted_at < :end)"
            )
            # the scores' period: a day's handlings, through the BRIN summaries
            assert (await conn.execute(text(read), period)).scalar() == 24 * 60
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join((await conn.execute(text(f"EXPLAIN {read}"), period)).scalars())
            assert "ix_handlings_dispatched" in plan, plan
        await _to(db, "downgrade", "evaluation_0013")
        assert await _access_method(db, "ix_handlings_dispatched") == "btree"
    finally:
        await db.dispose()


async def _storage_options(db: Database, table: str) -> list[str] | None:
    """``table``'s storage parameters (``fillfactor=50``...), None when it has none."""
    async with db.engine.connect() as conn:
        query = "SELECT reloptions FROM pg_class WHERE oid = CAST(:t AS regclass)"
        return (await conn.execute(text(query), {"t": table})).scalar()


async def _tracks_updated_in_place(db: Database) -> tuple[int, int]:
    """Updates and HOT updates of 60 hotspot tracks, each updated once in one transaction
    as a batch of registrations tallies them (a full list of recent times: the oldest goes
    as the newest comes, the row keeps its size)."""
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM hotspot_tracks"))
        await conn.execute(
            text(
                "INSERT INTO hotspot_tracks (matter_code, district, recent, tallied)"
                " SELECT 'M' || n, 'D' || (n % 16), CAST('[\"2026-12-06T08:00:00+00:00\"]'"
                " AS json), 1 FROM generate_series(1, 60) AS n"
            )
        )
    # the backend's counts not yet reported (an earlier transaction's too) and this one's
    counts = text(
        "SELECT pg_stat_get_xact_tuples_updated('hotspot_tracks'::regclass),"
        " pg_stat_get_xact_tuples_hot_updated('hotspot_tracks'::regclass)"
    )
    async with db.engine.begin() as conn:
        before = (await conn.execute(counts)).one()
        await conn.execute(
            text(
                "UPDATE hotspot_tracks SET tallied = tallied + 1, recent = CAST("
                "'[\"2026-12-06T08:00:01+00:00\"]' AS json)"
            )
        )
        after = (await conn.execute(counts)).one()
    return after[0] - before[0], after[1] - before[1]


async def test_hotspot_tallies_update_their_tracks_in_place(pg_url: str) -> None:
    """evaluation_0015: the tracks' pages keep room for their rows' next versions, so a
    batch of tallies updates every track in place (HOT: no lock record, no new page, no
    entry into the primary key); before it, on full pages, most could not."""
    db = Database("evaluation", pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text('CREATE SCHEMA "evaluation"'))
        await _to(db, "upgrade", "evaluation_0014")
        updated, in_place = await _tracks_updated_in_place(db)
        assert updated == 60 and in_place < 60
        await _to(db, "upgrade", "evaluation_0015")
        assert await _tracks_updated_in_place(db) == (60, 60)
        await _to(db, "downgrade", "evaluation_0014")
        assert await _storage_options(db, "hotspot_tracks") is None
    finally:
        await db.dispose()


# each service's migration that gives the outbox's pages room for the marked versions, and
# the one before it
OUTBOX_ROOM = {
    "intake": ("intake_0018", "intake_0017"),
    "dispatch": ("dispatch_0014", "dispatch_0013"),
    "sla": ("sla_0012", "sla_0011"),
    "evaluation": ("evaluation_0016", "evaluation_0015"),
    "channels": ("channels_0009", "channels_0008"),
    "knowledge": ("knowledge_0011", "knowledge_0010"),
}

_PAGES = text("SELECT id, (ctid::text::point)[0]::int FROM outbox")


async def _rows_moved_by_the_marking(db: Database) -> int:
    """Of 60 events written in one transaction (as a batch of registrations' are) and sent
    in one batch by the relay, how many its marking moved to another page."""
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox"))
    async with db.unit_of_work() as uow:
        uow.emit(*[registered(n) for n in range(60)])
    async with db.engine.connect() as conn:
        before = {row: page for row, page in await conn.execute(_PAGES)}
    assert await OutboxRelay(db, RecordingBus()).relay_once() == 60  # type: ignore[arg-type]
    async with db.engine.connect() as conn:
        after = {row: page for row, page in await conn.execute(_PAGES)}
        unsent = await conn.execute(text("SELECT 1 FROM outbox WHERE published_at IS NULL"))
        assert not unsent.all()
    return sum(after[row] != page for row, page in before.items())


@pytest.mark.parametrize("service", sorted(OUTBOX_ROOM))
async def test_the_relay_marks_its_rows_sent_on_their_own_pages(pg_url: str, service: str) -> None:
    """room_for_outbox_marks: a marked row's new version goes on the page of the row (no
    lock record on the old version, only the changed bytes to the WAL); on full pages
    before it, nearly every one went to another page."""
    revision, before = OUTBOX_ROOM[service]
    db = Database(service, pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{service}"'))
        await _to(db, "upgrade", before)
        assert await _rows_moved_by_the_marking(db) > 30
        await _to(db, "upgrade", revision)
        assert await _rows_moved_by_the_marking(db) == 0
        await _to(db, "downgrade", before)
        assert await _storage_options(db, "outbox") is None
    finally:
        await db.dispose()


async def _clocks_moved_by_their_stop(db: Database) -> int:
    """Of 60 dispatch clocks started in one transaction (as a batch of registrations starts
    them) and stopped in one (as the batch of their dispatches stops them), how many their
    stop moved to another page."""
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE clocks"))
        await conn.execute(
            text(
                "INSERT INTO clocks (ticket_id, kind, round, dispatch_no, unit_id, district,"
                " urgency, period, started_at, deadline, provisional, escalation_level,"
                " next_due_at, extensions) SELECT 'TJ' || n, 'dispatch', 1, 1, NULL, '和平区',"
                " 'livelihood', '2h', now(), now() + interval '2 hours', false, 0,"
                " now() + interval '2 hours', 0 FROM generate_series(1, 60) AS n"
            )
        )
    async with db.engine.begin() as conn:
        before = {row: page for row, page in await conn.execute(_CLOCK_PAGES)}
        await conn.execute(
            text(
                "UPDATE clocks SET stopped_at = now(), next_due_at = NULL"
                " WHERE kind = 'dispatch' AND stopped_at IS NULL"
            )
        )
        after = {row: page for row, page in await conn.execute(_CLOCK_PAGES)}
    return sum(after[row] != page for row, page in before.items())


_CLOCK_PAGES = text("SELECT id, (ctid::text::point)[0]::int FROM clocks")


async def test_a_stopped_clock_stays_on_its_page(pg_url: str) -> None:
    """sla_0013: the clocks' pages keep room for a clock's next version, so stopping a batch
    of clocks writes each one's new version on its own page (no lock record, only the bytes
    that changed to the WAL); on full pages before it, most went to another page."""
    db = Database("sla", pg_url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text('CREATE SCHEMA "sla"'))
        await _to(db, "upgrade", "sla_0012")
        assert await _clocks_moved_by_their_stop(db) > 30
        await _to(db, "upgrade", "sla_0013")
        assert await _clocks_moved_by_their_stop(db) == 0
        await _to(db, "downgrade", "sla_0012")
        assert await _storage_options(db, "clocks") is None
    finally:
        await db.dispose()
