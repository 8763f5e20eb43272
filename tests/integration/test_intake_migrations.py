"""intake's migrations on PostgreSQL, carrying existing tickets both ways. intake_0009: the
tickets' search words, rows of ``ticket_terms`` until intake_0008, become one array a ticket
in ``ticket_words`` and the search finds the same tickets; the downgrade writes them back as
the same rows. intake_0010: the status index goes and new pages are half filled, so status
updates are HOT; the downgrade puts both back. intake_0013: the registration time's index
goes, and comes back with the downgrade; the matter's stays. intake_0016: the ticket numbers'
unique index goes (reads by number go through the primary key) and comes back. intake_0017:
the phone's index holds the matter in the "C" collation, and the registration batch's
duplicate-hint lookup can read no other index; the downgrade puts the index back."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import search_terms
from services.intake.handlers.registration import _WRITE_BATCH
from services.intake.models import numbered, tickets
from shared.db import Database, migration_step
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

MIGRATIONS = ROOT / "services" / "intake" / "migrations"
T = datetime(2026, 1, 15, 1, 30, tzinfo=UTC)
CONTENTS = {
    "TJ20260115000001": "家中暖气不热，卧室温度仅14℃",
    "TJ20260115000002": "楼道暖气漏水，家里有老人",
    "TJ20260115000003": "。。。",  # no searchable words
}
# a ticket's columns but its number and content, as the migrations' tests insert it
TICKET = {
    "channel": "phone",
    "type": "complaint",
    "urgency": "livelihood",
    "matter_code": "HEAT-001",
    "district": "120101",
    "anonymous": False,
    "flagged": False,
    "status": "registered",
    "registered_at": T,
    "registered_by": "operator",
}
TERMS = sa.table("ticket_terms", sa.column("term"), sa.column("ticket_pk"))


def _migrate(step: str, revision: str) -> Callable[[Connection], None]:
    return functools.partial(
        migration_step, script_location=str(MIGRATIONS), step=step, revision=revision
    )


async def _found(conn: AsyncConnection, *words: str) -> list[str]:
    found = await conn.execute(
        text(
            "SELECT ticket_id FROM tickets JOIN ticket_words ON ticket_pk = id"
            " WHERE terms @> CAST(:w AS text[]) ORDER BY id"
        ),
        {"w": list(words)},
    )
    return list(found.scalars())


async def _tickets_at(conn: AsyncConnection, revision: str, **columns: object) -> dict[str, int]:
    """A fresh intake schema migrated to ``revision`` holding a ticket for each of
    ``CONTENTS`` (with ``columns`` set on each); their primary keys by ticket id."""
    await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "intake"'))
    await conn.run_sync(_migrate("upgrade", revision))
    pks: dict[str, int] = {}
    for number, content in CONTENTS.items():
        values = {**TICKET, **columns, "ticket_id": number, "content": content}
        names = ", ".join(values)
        pks[number] = await conn.scalar(
            text(
                f"INSERT INTO tickets ({names}) VALUES ({', '.join(f':{n}' for n in values)})"
                " RETURNING id"
            ),
            values,
        )
    return pks


async def test_0009_carries_the_words_over_and_back(pg_url: str) -> None:
    db = Database("intake", pg_url)
    try:
        async with db.engine.begin() as conn:
            pks = await _tickets_at(conn, "intake_0008")
            rows = {
                (term, pks[n]) for n, content in CONTENTS.items() for term in search_terms(content)
            }
            await conn.execute(sa.insert(TERMS), [{"term": t, "ticket_pk": p} for t, p in rows])
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("upgrade", "intake_0009"))
        async with db.engine.connect() as conn:
            stored: dict[str, list[str] | None] = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT ticket_id, terms FROM tickets"
                            " LEFT JOIN ticket_words ON ticket_pk = id"
                        )
                    )
                ).all()
            )
            heating = await _found(conn, "暖气")
            leak_old = await _found(conn, "暖气", "老人")
            gone = await conn.scalar(text("SELECT to_regclass('ticket_terms')"))
        assert stored == {
            "TJ20260115000001": sorted(search_terms(CONTENTS["TJ20260115000001"])),
            "TJ20260115000002": sorted(search_terms(CONTENTS["TJ20260115000002"])),
            "TJ20260115000003": None,
        }
        assert heating == ["TJ20260115000001", "TJ20260115000002"]
        assert leak_old == ["TJ20260115000002"]
        assert gone is None
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("downgrade", "intake_0008"))
        async with db.engine.connect() as conn:
            back = set((await conn.execute(sa.select(TERMS.c.term, TERMS.c.ticket_pk))).all())
            words = await conn.scalar(text("SELECT to_regclass('ticket_words')"))
        assert back == rows
        assert words is None
    finally:
        await db.dispose()


async def _tickets_shape(
    conn: AsyncConnection,
) -> tuple[list[tuple[object, ...]], set[str], object]:
    """The tickets' rows, index names and storage options."""
    rows = (await conn.execute(text("SELECT * FROM tickets ORDER BY id"))).all()
    indexes = await conn.scalars(
        text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'intake' AND tablename = 'tickets'"
        )
    )
    options = await conn.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'tickets'"))
    return [tuple(r) for r in rows], set(indexes), options


async def test_0010_drops_the_status_index_and_half_fills_pages_and_back(pg_url: str) -> None:
    db = Database("intake", pg_url)
    try:
        async with db.engine.begin() as conn:
            await _tickets_at(
                conn, "intake_0009", status="dispatched", lead_unit_id="city-heat", status_at=T
            )
            rows, indexes, options = await _tickets_shape(conn)
        assert len(rows) == 3 and "ix_tickets_status" in indexes and options is None
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("upgrade", "intake_0010"))
        async with db.engine.connect() as conn:
            without = indexes - {"ix_tickets_status"}
            assert await _tickets_shape(conn) == (rows, without, ["fillfactor=50"])
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("downgrade", "intake_0009"))
        async with db.engine.connect() as conn:
            assert await _tickets_shape(conn) == (rows, indexes, None)
    finally:
        await db.dispose()


async def test_0013_drops_the_time_index_keeps_the_matter_index_and_back(pg_url: str) -> None:
    db = Database("intake", pg_url)
    dropped = {"ix_tickets_registered_at"}
    try:
        async with db.engine.begin() as conn:
            await _tickets_at(conn, "intake_0012")
            rows, indexes, options = await _tickets_shape(conn)
        assert len(rows) == 3 and dropped <= indexes and "ix_tickets_matter" in indexes
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("upgrade", "intake_0013"))
        async with db.engine.connect() as conn:
            assert await _tickets_shape(conn) == (rows, indexes - dropped, options)
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("downgrade", "intake_0012"))
        async with db.engine.connect() as conn:
            assert await _tickets_shape(conn) == (rows, indexes, options)
    finally:
        await db.dispose()


async def _plan(conn: AsyncConnection, query: object) -> str:
    """``query``'s plan with sequential scans off: one it still holds has no index to read."""
    sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    return "\n".join(await conn.scalars(text(f"EXPLAIN {sql}")))


async def test_0016_drops_the_numbers_index_reads_by_number_take_the_primary_key_and_back(
    pg_url: str,
) -> None:
    db = Database("intake", pg_url)
    dropped = {"tickets_ticket_id_key"}
    try:
        async with db.engine.begin() as conn:
            pks = await _tickets_at(conn, "intake_0015")
            rows, indexes, options = await _tickets_shape(conn)
        assert dropped <= indexes and pks == {n: int(n[-6:]) for n in CONTENTS}
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("upgrade", "intake_0016"))
        async with db.engine.begin() as conn:
            assert await _tickets_shape(conn) == (rows, indexes - dropped, options)
            for number, pk in pks.items():
                assert await conn.scalar(sa.select(tickets.c.id).where(numbered(number))) == pk
            # another day's number with a serial that is taken, and texts no number reads as
            for other in ("TJ20260116000002", "TJ2026011500002", "", "x"):
                assert await conn.scalar(sa.select(tickets.c.id).where(numbered(other))) is None
            plan = await _plan(conn, sa.select(tickets).where(numbered("TJ20260115000002")))
            assert "tickets_pkey" in plan and "Seq Scan" not in plan, plan
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("downgrade", "intake_0015"))
        async with db.engine.connect() as conn:
            assert await _tickets_shape(conn) == (rows, indexes, options)
    finally:
        await db.dispose()


async def _batch_plan(conn: AsyncConnection) -> str:
    """The generic plan of the registration batch's statement (with its duplicate-hint
    lookup), sequential scans off: an index it reads is one the lookup can use."""
    sql = _WRITE_BATCH[False, True]
    params = max(int(n) for n in re.findall(r"\$(\d+)", sql))
    raw = (await conn.get_raw_connection()).driver_connection
    await raw.execute("SET LOCAL enable_seqscan = off")
    await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    await raw.execute(f"PREPARE batch_plan AS {sql}")
    try:
        rows = await raw.fetch(f"EXPLAIN EXECUTE batch_plan({', '.join(['NULL'] * params)})")
    finally:
        await raw.execute("DEALLOCATE batch_plan")
    return "\n".join(r[0] for r in rows)


async def test_0017_the_duplicate_hints_read_only_the_phones_index_and_back(pg_url: str) -> None:
    db = Database("intake", pg_url)
    index = "ix_tickets_phone_matter"
    try:
        async with db.engine.begin() as conn:
            await _tickets_at(conn, "intake_0016", requester_phone_index="p1")
            rows, indexes, options = await _tickets_shape(conn)
            before = await _index_definition(conn, index)
        assert 'COLLATE "C"' not in before and "ix_tickets_matter" in indexes
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("upgrade", "intake_0017"))
        async with db.engine.begin() as conn:
            assert await _tickets_shape(conn) == (rows, indexes, options)
            assert 'matter_code COLLATE "C"' in await _index_definition(conn, index)
            plan = await _batch_plan(conn)
            assert f"Index Scan using {index}" in plan, plan
            # the lookup compares the phone, the matter and the time in the phone's index
            assert re.search(
                r"Index Cond: .*requester_phone_index.*matter_code.*registered_at", plan
            )
            # and without it, no other index can serve the lookup (the matter's cannot)
            await conn.execute(text(f"DROP INDEX {index}"))
            assert "ix_tickets_matter" not in await _batch_plan(conn)
            await conn.rollback()
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate("downgrade", "intake_0016"))
        async with db.engine.connect() as conn:
            assert await _tickets_shape(conn) == (rows, indexes, options)
            assert await _index_definition(conn, index) == before
    finally:
        await db.dispose()


async def _index_definition(conn: AsyncConnection, name: str) -> str:
    return await conn.scalar(
        text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'intake' AND indexname = :n"),
        {"n": name},
    )
