"""The set-based consumers on the real PostgreSQL, where ``update_many`` and
``insert_new`` send a batch's rows as arrays (UPDATE … FROM unnest, INSERT … SELECT FROM
unnest): a batch leaves exactly what one-by-one handling leaves, and the statements'
text does not change with the number of rows, so each connection prepares it once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    event,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from services.channels.app import SPEC as CHANNELS
from services.channels.models import ticket_units
from services.dispatch.app import SPEC as DISPATCH
from services.dispatch.handlers import many
from services.dispatch.handlers.read_models import settle_stranded
from services.dispatch.models import assignments, early_dispatch_deadlines
from services.evaluation.app import SPEC as EVALUATION
from services.evaluation.handlers import monitoring
from services.evaluation.models import hotspot_tracks
from services.sla.app import SPEC as SLA
from shared.consumer import Consumer
from shared.db import (
    UnitOfWork,
    UTCDateTime,
    begin_on_driver,
    fetch_rows,
    in_list,
    in_transaction,
    insert_new,
    joined_payloads,
    joined_texts,
    one_of,
    pair_of,
    pairs_in,
    refused_by_a_key,
    rows_in,
    split_payloads_sql,
    split_texts_sql,
    update_many,
    upsert_many,
)
from shared.events import Envelope
from shared.service import ServiceContext, ServiceSpec
from tests.unit.channels.test_channel_events_of_no_effect import (
    assert_types_taken_follow_the_subscriptions,
)
from tests.unit.evaluation.test_hotspot_batches import (
    HEXI,
    HOTSPOT_BATCHES,
    WATER,
    assert_batches_leave_what_one_by_one_leaves,
    registrations,
)
from tests.unit.shared.test_db_arrays import ROWS as FLAG_ROWS
from tests.unit.shared.test_db_arrays import STORED as FLAGS_STORED
from tests.unit.shared.test_db_arrays import WRITTEN as FLAGS_WRITTEN
from tests.unit.shared.test_db_arrays import flags, write_alike_and_varied
from tests.unit.shared.test_db_arrays import metadata as FLAGS
from tests.unit.test_set_based_consumers import (
    BATCHES,
    T0,
    Running,
    again,
    assert_runs_emit_under_each_tickets_trace,
    assert_set_based_leaves_what_one_by_one_leaves,
    contents,
    deadline_set,
    dispatch_early_batch,
    dispatched,
    early_deadlines_kept,
    registered,
    serving,
)

pytestmark = pytest.mark.integration


def on_postgres(url: str) -> Running:
    """Each run of a service on a schema of its own making (the previous run's dropped)."""

    @asynccontextmanager
    async def running(spec: ServiceSpec, name: str) -> AsyncIterator[ServiceContext]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{spec.name}" CASCADE')
        finally:
            await conn.close()
        async with serving(spec, url) as ctx:
            yield ctx

    return running


@BATCHES
async def test_a_batch_handled_set_based_on_postgresql_leaves_what_one_by_one_leaves(
    spec: ServiceSpec,
    batch: Callable[[], list[Envelope]],
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await assert_set_based_leaves_what_one_by_one_leaves(
        spec, batch(), on_postgres(pg_url), monkeypatch
    )


async def test_a_set_based_run_emits_under_each_tickets_own_trace_id_on_postgresql(
    pg_url: str,
) -> None:
    await assert_runs_emit_under_each_tickets_trace(on_postgres(pg_url))


@HOTSPOT_BATCHES
async def test_a_batch_of_registrations_makes_the_hotspot_one_by_one_handling_makes_on_postgresql(
    batches: list[list[Envelope]], joined: int, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await assert_batches_leave_what_one_by_one_leaves(
        batches, joined, on_postgres(pg_url), monkeypatch
    )


async def test_two_instances_tally_one_matter_and_district_one_after_the_other(
    pg_url: str,
) -> None:
    """Evaluation's tally locks each matter and district it counts (an advisory lock, no
    row lock: no WAL record, no dirtied page): another instance's batch of the same pair, in
    a transaction at the same time, waits for the first to commit and counts on from what it
    wrote; so for a pair whose track neither has made yet. Each ticket counted once."""
    spec = dataclasses.replace(EVALUATION, background=[])
    async with on_postgres(pg_url)(spec, "two-instances") as ctx:
        first = registrations([registered(1, WATER, district=HEXI, minutes=0)])
        second = registrations([registered(2, WATER, district=HEXI, minutes=1)])
        async with ctx.db.engine.connect() as one, ctx.db.engine.connect() as other:
            for conn in (one, other):  # as the consumer begins a batch's transaction
                await conn.begin()
                await begin_on_driver(conn)
            await monitoring.tally_hotspots(ctx, UnitOfWork(one), first)
            waiting = asyncio.create_task(monitoring.tally_hotspots(ctx, UnitOfWork(other), second))
            async with ctx.db.engine.connect() as look, asyncio.timeout(30):
                waits = text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                while not await look.scalar(waits):
                    await asyncio.sleep(0.02)
            assert not waiting.done()
            await one.commit()
            await waiting
            await other.commit()
        async with ctx.db.engine.connect() as conn:
            tracks = (await conn.execute(select(hotspot_tracks))).all()
    assert [(t.matter_code, t.district, t.tallied, len(t.recent)) for t in tracks] == [
        (WATER, HEXI, 2, 2)
    ]


async def test_dispatch_deadlines_heard_of_before_their_tickets_are_kept_on_postgresql(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline run's update keeps what finds no work order (its CTE) and the
    registration run's routing read takes it (its CTE): no deadline lost either way."""
    await assert_set_based_leaves_what_one_by_one_leaves(
        DISPATCH, dispatch_early_batch(), on_postgres(pg_url), monkeypatch, early_deadlines_kept
    )


async def test_a_deadline_kept_while_another_instance_opens_the_work_order_is_settled(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances of dispatch, one holding the ticket's partition of hotline.tickets, the
    other its partition of hotline.sla, in two transactions at once: the registration takes
    no deadline (none committed yet), the deadline run sees no work order (not committed
    yet) and keeps it. Both commit: the deadline waits beside the work order until
    ``settle_stranded`` puts it on (the service runs it every few seconds; not here)."""
    spec = dataclasses.replace(DISPATCH, background=[])
    async with on_postgres(pg_url)(spec, "two-instances") as ctx:
        async with ctx.db.engine.connect() as one, ctx.db.engine.connect() as other:
            for conn in (one, other):  # as the consumer begins a batch's transaction
                await conn.begin()
                await begin_on_driver(conn)
            await many.on_registered(ctx, UnitOfWork(one), [registered(1)])
            await many.on_deadline_set(ctx, UnitOfWork(other), [deadline_set(1, "dispatch", None)])
            await one.commit()
            await other.commit()

        async def left() -> tuple[Any, list[Any]]:
            async with ctx.db.engine.connect() as conn:
                found = await conn.scalar(select(assignments.c.dispatch_deadline))
                waiting = (await conn.execute(select(early_dispatch_deadlines))).all()
            return found, waiting

        assert await left() == (None, [("TJ0001", 1, T0 + timedelta(hours=2))])
        assert await settle_stranded(ctx) == 1
        assert await left() == (T0 + timedelta(hours=2), [])


async def test_the_next_run_is_routed_by_the_catalog_as_changed(pg_url: str) -> None:
    """Set-based routing keeps the matters, units and routes it made for the process, by the
    values the routing read returns of them (``many._catalog_of``): a matter or unit changed
    between two runs (the same codes, another statutory period; a unit no longer active)
    routes the next run by the catalog as changed."""
    spec = dataclasses.replace(DISPATCH, background=[])
    async with on_postgres(pg_url)(spec, "catalog-change") as ctx:
        consumer = ctx.extras["consumer"]

        async def routed(first: int) -> list[tuple[str, str | None, str | None]]:
            batch = [registered(first + n, "WATER-001" if n < 3 else "HEAT-001") for n in range(6)]
            await consumer.handle_batch(batch)
            wanted = [e.ticket_id for e in batch]
            query = select(
                assignments.c.unit_id, assignments.c.statutory_period, assignments.c.state
            )
            async with ctx.db.engine.connect() as conn:
                rows = await conn.execute(
                    query.where(assignments.c.ticket_id.in_(wanted)).order_by(
                        assignments.c.ticket_id
                    )
                )
                return [tuple(r) for r in rows]

        water, heat = ("city-water", None, "dispatched"), ("city-heating", None, "dispatched")
        assert await routed(1) == [water] * 3 + [heat] * 3
        async with ctx.db.engine.begin() as conn:
            await conn.execute(text("UPDATE units SET active = false WHERE unit_id = 'city-water'"))
            await conn.execute(
                text("UPDATE matters SET statutory_period = '5wd' WHERE code = 'HEAT-001'")
            )
        determination = (None, None, "pending_determination")
        assert await routed(11) == [determination] * 3 + [("city-heating", "5wd", "dispatched")] * 3


async def test_channels_takes_the_types_the_subscriptions_want_on_postgresql(pg_url: str) -> None:
    """As on SQLite: the subscriptions are read on the driver's connection here."""
    await assert_types_taken_follow_the_subscriptions(on_postgres(pg_url))


# a batch of new facts, then the same facts re-sent under other event ids (a producer's
# retry): SLA's tickets and clocks, dispatch's work orders, evaluation's handlings,
# channels' units of a ticket
RESENT = pytest.mark.parametrize(
    ("spec", "first", "resent"),
    [
        (
            SLA,
            [*(registered(n) for n in range(1, 6)), *(dispatched(n) for n in range(1, 6))],
            [4, 7],
        ),
        (DISPATCH, [registered(n) for n in range(1, 6)], [2]),
        (EVALUATION, [dispatched(n) for n in range(1, 6)], [0, 3]),
        (CHANNELS, [dispatched(n) for n in range(1, 6)], [1, 3]),
    ],
    ids=["sla", "dispatch", "evaluation", "channels"],
)


def tries_noted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """Each try a consumer makes of a batch from now on, as (fast, all_new)
    (``Consumer._handle``)."""
    tries: list[tuple[bool, bool]] = []
    handle = Consumer._handle

    async def noted(self: Consumer, wanted: Any, *, fast: bool, all_new: bool = False) -> None:
        tries.append((fast, all_new))
        await handle(self, wanted, fast=fast, all_new=all_new)

    monkeypatch.setattr(Consumer, "_handle", noted)
    return tries


@RESENT
async def test_new_facts_are_inserted_as_new_and_facts_resent_go_again_set_based(
    spec: ServiceSpec,
    first: list[Envelope],
    resent: list[int],
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch claimed as new writes its facts as new (a plain INSERT, no speculative
    insertion: ``insert_new``'s ``all_new``) in one go; a fact written before under
    another event id fails that (its key refuses it), and the batch goes again set-based,
    ignoring duplicates, not event by event: nothing written twice, nothing emitted."""
    tries = tries_noted(monkeypatch)
    async with on_postgres(pg_url)(spec, "resent") as ctx:
        consumer: Consumer = ctx.extras["consumer"]
        await consumer.handle_batch(first)
        assert tries == [(True, True)]
        written = await contents(ctx)
        tries.clear()
        await consumer.handle_batch([again(first[i]) for i in resent])
        assert tries == [(True, True), (True, False)]
        now = await contents(ctx)
        assert len(now.pop("inbox")) == len(written.pop("inbox")) + len(resent)  # heard
        assert now == written
        assert await consumer.parked() == []


async def test_a_later_dispatch_to_a_unit_the_ticket_had_goes_in_one_go(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels writes only a ticket's first dispatch's units as new facts: a re-dispatch
    (after a return) or a re-handling round may give the ticket a unit it had, and its
    batch, claimed as new, goes through at the first try, each unit of a ticket kept once."""
    tries = tries_noted(monkeypatch)
    async with on_postgres(pg_url)(CHANNELS, "later-dispatches") as ctx:
        consumer: Consumer = ctx.extras["consumer"]
        await consumer.handle_batch([dispatched(n) for n in range(1, 4)])
        later = [dispatched(1, dispatch_no=2), dispatched(2, dispatch_no=3), dispatched(4)]
        rehandled = dispatched(3).payload | {"round": 2}
        later.append(dispatched(3).model_copy(update={"payload": rehandled}))
        await consumer.handle_batch(later)
        assert tries == [(True, True), (True, True)]
        async with ctx.db.engine.connect() as conn:
            units = (await conn.execute(select(ticket_units).order_by("ticket_id"))).all()
        assert [tuple(u) for u in units] == [(f"TJ000{n}", "city-water") for n in range(1, 5)]
        assert await consumer.parked() == []


async def test_tickets_heard_of_in_either_order_go_in_one_go(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluation hears a ticket's registration and its dispatch on two topics, either
    first: a batch of registrations claimed as new writes its tickets' rows without ON
    CONFLICT, around the rows dispatches made first (it fills those in), at the first try,
    each ticket counted once."""
    tries = tries_noted(monkeypatch)
    spec = dataclasses.replace(EVALUATION, background=[])
    async with on_postgres(pg_url)(spec, "either-order") as ctx:
        consumer: Consumer = ctx.extras["consumer"]
        await consumer.handle_batch([dispatched(n) for n in range(1, 4)])
        await consumer.handle_batch([registered(n) for n in range(1, 7)])
        await consumer.handle_batch([dispatched(n) for n in range(4, 6)])
        assert tries == [(True, True)] * 3
        async with ctx.db.engine.connect() as conn:
            query = text("SELECT ticket_id, state, unit_id, channel FROM tickets ORDER BY 1")
            stored = [tuple(r) for r in await conn.execute(query)]
            tallied = await conn.scalar(text("SELECT sum(tallied) FROM hotspot_tracks"))
        dispatched_ = [(f"TJ000{n}", "dispatched", "city-water", "phone") for n in range(1, 6)]
        assert stored == [*dispatched_, ("TJ0006", "registered", None, "phone")]
        assert tallied == 6
        assert await consumer.parked() == []


metadata = MetaData()
tracks = Table(
    "tracks",
    metadata,
    Column("matter", String(20), primary_key=True),
    Column("district", String(12), primary_key=True),
    Column("recent", JSON),
    Column("tallied", Integer, nullable=False, server_default="0"),
    Column("seen_at", UTCDateTime),
)


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[tuple[AsyncConnection, list[str]]]:
    """A connection to a database holding ``tracks``, and every statement it sends (one
    executed once per row of its parameters marked ``executemany:``): through SQLAlchemy,
    or on the driver's connection (a statement built once, in an open transaction)."""
    engine = create_async_engine(url)
    sent: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _sent(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        sent.append(f"executemany: {sql}" if many else sql)

    execute, fetch = asyncpg.Connection.execute, asyncpg.Connection.fetch

    async def _sent_to_driver(driver: Any, query: str, *args: Any, timeout: Any = None) -> Any:
        sent.append(query)
        return await execute(driver, query, *args, timeout=timeout)

    async def _fetched_on_driver(driver: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await fetch(driver, query, *args, **kwargs)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            sent.clear()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(asyncpg.Connection, "execute", _sent_to_driver)
                patch.setattr(asyncpg.Connection, "fetch", _fetched_on_driver)
                yield conn, sent
    finally:
        await engine.dispose()


def track(n: int, **values: Any) -> dict[str, Any]:
    return {"matter": f"M{n % 3}", "district": f"D{n}", **values}


async def rows(conn: AsyncConnection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute(select(tracks).order_by(tracks.c.district))]


async def test_insert_new_sends_one_statement_text_for_any_number_of_rows(pg_url: str) -> None:
    async with connected(pg_url) as (conn, sent):
        for size in (1, 2, 5):
            new = [track(n, recent=[n], seen_at=T0) for n in range(10 * size, 11 * size)]
            got = await insert_new(conn, tracks, new, tracks.c.district)
            assert sorted(r.district for r in got) == sorted(t["district"] for t in new)
        texts = set(sent)
        again = await insert_new(conn, tracks, [track(10), track(99)], tracks.c.district)
        stored = await rows(conn)

    assert [r.district for r in again] == ["D99"]  # D10 is there: not inserted again
    assert len(texts) == 1, texts
    assert ("M1", "D10", [10], 0, T0) in stored
    assert ("M0", "D99", None, 0, None) in stored


async def test_insert_new_of_rows_some_there_inserts_the_others_without_on_conflict(
    pg_url: str,
) -> None:
    """``some_there`` with ``all_new``: the rows whose key is not there, in a plain INSERT
    (no speculative insertion); those there stay as they are."""
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(1, tallied=1)])
        sent.clear()
        given = [track(1, tallied=7), track(2, tallied=2), track(3, tallied=3)]
        got = await insert_new(
            conn, tracks, given, tracks.c.district, all_new=True, some_there=True
        )
        texts = list(sent)
        stored = await rows(conn)

    assert sorted(r.district for r in got) == ["D2", "D3"]
    assert len(texts) == 1 and "ON CONFLICT" not in texts[0], texts
    assert [(r[1], r[3]) for r in stored] == [("D1", 1), ("D2", 2), ("D3", 3)]


async def test_new_facts_meeting_a_row_another_transaction_is_writing_are_refused(
    pg_url: str,
) -> None:
    """``insert_new``'s ``some_there`` skips the rows there when the statement begins; a
    row another transaction inserts meanwhile is not one of them: the statement waits for
    that transaction and, once it commits, fails with a unique violation (a consumer's
    batch then goes again ignoring duplicates), never writing the row twice."""
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.connect() as one, engine.connect() as other:
            for conn in (one, other):
                await conn.begin()
                await begin_on_driver(conn)
            await insert_new(one, tracks, [track(1, tallied=1)], all_new=True)
            row = [track(1, tallied=2, seen_at=T0)]
            write = insert_new(other, tracks, row, all_new=True, some_there=True)
            waiting = asyncio.create_task(write)
            async with engine.connect() as look, asyncio.timeout(30):
                waits = text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                while not await look.scalar(waits):
                    await asyncio.sleep(0.02)
            await one.commit()
            with pytest.raises(Exception) as refused:
                await waiting
            assert refused_by_a_key(refused.value)
            await other.rollback()
        async with engine.connect() as conn:
            assert await rows(conn) == [("M1", "D1", None, 1, None)]
    finally:
        await engine.dispose()


async def test_update_many_sets_each_rows_own_values_in_one_statement(pg_url: str) -> None:
    later = T0 + timedelta(hours=1)
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n, seen_at=T0) for n in range(6)])
        sent.clear()
        for size in (1, 3):
            await update_many(
                conn,
                tracks,
                ["matter", "district"],
                [track(n, recent=[f"t{n}"], tallied=n) for n in range(size)],
            )
        # a condition on each row's own value: D4 is older than what is stored, D5 newer
        await update_many(
            conn,
            tracks,
            ["matter", "district"],
            [track(4, seen_at=T0 - timedelta(hours=1)), track(5, seen_at=later)],
            tracks.c.seen_at <= bindparam("v_seen_at"),
        )
        stored = await rows(conn)

    # one execution for the rows, and the same text for one row and for three
    assert sent.count(sent[0]) == 2 and not sent[0].startswith("executemany"), sent
    assert stored == [
        ("M0", "D0", ["t0"], 0, T0),
        ("M1", "D1", ["t1"], 1, T0),
        ("M2", "D2", ["t2"], 2, T0),
        ("M0", "D3", None, 0, T0),
        ("M1", "D4", None, 0, T0),
        ("M2", "D5", None, 0, later),
    ]


async def test_upsert_many_inserts_new_rows_whole_and_changes_only_some_columns_of_the_others(
    pg_url: str,
) -> None:
    later = T0 + timedelta(hours=1)
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n, recent=[n], seen_at=T0) for n in range(3)])
        sent.clear()
        for size in (1, 4):
            await upsert_many(
                conn,
                tracks,
                ["matter", "district"],
                [track(n, recent=[f"t{n}"], tallied=size, seen_at=later) for n in range(size)],
                ["tallied", "seen_at"],
            )
        texts = list(sent)
        stored = await rows(conn)

    # one execution each, the same text for one row and for four
    assert len(texts) == 2 and texts[0] == texts[1], texts
    assert stored == [
        ("M0", "D0", [0], 4, later),  # there: only tallied and seen_at changed
        ("M1", "D1", [1], 4, later),
        ("M2", "D2", [2], 4, later),
        ("M0", "D3", ["t3"], 4, later),  # new: in whole
    ]


# a condition built once, holding a value of its own
FEW_TALLIED = (tracks.c.tallied < 5,)


async def test_update_many_keeps_the_values_its_condition_holds(pg_url: str) -> None:
    """A ``where`` with a value of its own (``tallied < 5``), built once: one text for
    every batch, and each batch's rows narrowed by that value."""
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n, tallied=3 * n) for n in range(4)])
        sent.clear()
        for first in (0, 2):
            rows_ = [track(n, recent=[f"b{first}"]) for n in (first, first + 1)]
            await update_many(conn, tracks, ["matter", "district"], rows_, *FEW_TALLIED)
        texts = set(sent)
        stored = await rows(conn)

    assert len(texts) == 1, texts
    assert [(r[1], r[2], r[3]) for r in stored] == [
        ("D0", ["b0"], 0),
        ("D1", ["b0"], 3),
        ("D2", None, 6),  # tallied 6: not narrowed in
        ("D3", None, 9),
    ]


async def test_update_many_applies_rows_of_one_key_in_order(pg_url: str) -> None:
    """Two rows of one key: each sees the one before it (the later values stay)."""
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(1)])
        await update_many(
            conn,
            tracks,
            ["matter", "district"],
            [track(1, tallied=1), track(1, tallied=2)],
            tracks.c.tallied == bindparam("v_tallied") - 1,
        )
        stored = await rows(conn)

    assert stored == [("M1", "D1", None, 2, None)]
    assert sent[-2].startswith("executemany: UPDATE"), sent


# a counter that adds each row's, and a time that keeps the later of the stored and the row's
seen = bindparam("v_seen_at", type_=tracks.c.seen_at.type)
MERGED = {
    "tallied": tracks.c.tallied + bindparam("v_tallied", type_=Integer),
    "seen_at": case((tracks.c.seen_at >= seen, tracks.c.seen_at), else_=seen),
}


async def test_update_many_merges_each_rows_values_with_the_stored_ones(pg_url: str) -> None:
    """``merge``: a counter adds each row's; a time keeps the later of the stored and the
    row's. One execution for the rows, one text for three rows and for one."""
    given = [track(n, tallied=10, seen_at=T0 + timedelta(hours=n - 1)) for n in range(3)]
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n, tallied=n, seen_at=T0) for n in range(3)])
        sent.clear()
        for batch in (given, given[:1]):
            await update_many(conn, tracks, ["matter", "district"], batch, merge=MERGED)
        texts = list(sent)
        stored = await rows(conn)

    assert len(texts) == 2 and texts[0] == texts[1], texts
    assert [(r[1], r[3], r[4]) for r in stored] == [
        ("D0", 20, T0),  # merged twice: added both times, the stored time the later
        ("D1", 11, T0),
        ("D2", 12, T0 + timedelta(hours=1)),
    ]


async def test_one_of_sends_one_statement_text_for_any_number_of_values(pg_url: str) -> None:
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n) for n in range(6)])
        sent.clear()
        found = []
        for size in (0, 1, 2, 5):
            wanted = one_of(conn, tracks.c.district, {f"D{n}" for n in range(size)})
            rows = await conn.execute(select(tracks.c.district).where(wanted))
            found.append(sorted(rows.scalars()))

    assert found == [[], ["D0"], ["D0", "D1"], ["D0", "D1", "D2", "D3", "D4"]]
    assert len(set(sent)) == 1, sent


async def test_pair_of_sends_one_statement_text_for_any_number_of_pairs(pg_url: str) -> None:
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n) for n in range(6)])
        sent.clear()
        found = []
        for wanted in ([], [("M1", "D1")], [("M0", "D0"), ("M1", "D0"), ("M2", "D5")]):
            pairs = pair_of(conn, (tracks.c.matter, tracks.c.district), wanted)
            rows = await conn.execute(select(tracks.c.district).where(pairs))
            found.append(sorted(rows.scalars()))

    assert found == [[], ["D1"], ["D0", "D5"]]  # M1 is not D0's matter
    assert len(set(sent)) == 1, sent


async def test_fetch_rows_reads_what_sqlalchemy_reads_in_one_statement_text(pg_url: str) -> None:
    """A read built once and sent on the driver's connection: the rows SQLAlchemy gives
    (read by name, position or ``_mapping``; a JSON value decoded, a timestamp in UTC)."""
    read = select(tracks).where(in_list(tracks.c.district, "districts", postgres=True))
    async with connected(pg_url) as (conn, sent):
        later = T0.astimezone(timezone(timedelta(hours=8)))
        await insert_new(conn, tracks, [track(n, recent=[n], seen_at=later) for n in range(6)])
        sent.clear()
        found = []
        for size in (0, 1, 2, 5):
            found.append(
                await fetch_rows(conn, read, {"districts": [f"D{n}" for n in range(size)]})
            )
        texts = set(sent)
        expected = (await conn.execute(read, {"districts": ["D0", "D1"]})).all()
        # a write without RETURNING (dispatch's deadline run): done on the driver, no rows
        tally = update(tracks).where(in_list(tracks.c.district, "districts", postgres=True))
        wrote = await fetch_rows(conn, tally.values(tallied=7), {"districts": ["D4", "D5"]})
        tallied = await fetch_rows(conn, read, {"districts": ["D4", "D5"]})

    assert wrote == [] and {r.tallied for r in tallied} == {7}
    assert [len(rows) for rows in found] == [0, 1, 2, 5]
    assert len(texts) == 1, texts
    assert sorted(found[2]) == sorted(tuple(r) for r in expected)
    row = min(found[2])
    assert (row.matter, row.district, row.recent, row.tallied) == ("M0", "D0", [0], 0)
    assert row.seen_at == T0 and row.seen_at.tzinfo is UTC
    assert row._mapping["district"] == "D0" and row[1] == "D0"


async def test_rows_in_reads_a_tables_or_some_columns_rows_by_key(pg_url: str) -> None:
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n, tallied=n) for n in range(4)])
        sent.clear()
        whole = await rows_in(conn, (tracks,), tracks.c.district, {"D1", "D3", "D9"})
        some = await rows_in(conn, (tracks.c.district, tracks.c.tallied), tracks.c.matter, ["M0"])
        none = await rows_in(conn, (tracks,), tracks.c.district, [])

    assert sorted((r.district, r.tallied) for r in whole) == [("D1", 1), ("D3", 3)]
    assert sorted(tuple(r) for r in some) == [("D0", 0), ("D3", 3)]
    assert none == []
    assert len(sent) == 3 and len(set(sent)) == 2, sent  # one text for any number of keys


async def test_insert_new_writes_the_rows_sqlalchemy_writes_with_arrays_on_the_driver(
    pg_url: str,
) -> None:
    """The arrays the driver takes as they are (timestamps of any zone, 0 and 1 for bools,
    None) leave the rows SQLite's path leaves; a naive timestamp is refused."""
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(FLAGS.create_all)
            await begin_on_driver(conn)
            assert await in_transaction(conn) is not None  # the statements go to the driver
            await insert_new(conn, flags, FLAG_ROWS)
            stored = [tuple(r) for r in await conn.execute(select(flags).order_by(flags.c.name))]
            with pytest.raises(ValueError, match="naive datetime"):
                await insert_new(
                    conn, flags, [dict(FLAG_ROWS[0], name="d", at=T0.replace(tzinfo=None))]
                )
    finally:
        await engine.dispose()

    assert stored == FLAGS_STORED
    assert all(r[3] is None or r[3].tzinfo is UTC for r in stored)


async def test_columns_alike_and_varied_across_a_batch_write_the_same_rows_on_postgresql(
    pg_url: str,
) -> None:
    """A column the batch's rows all hold alike goes as one value, the others as arrays:
    the rows stored are those SQLite's path stores, and each helper's statement keeps one
    text whichever columns are alike."""
    async with connected(pg_url) as (conn, sent):
        await conn.run_sync(FLAGS.create_all)
        sent.clear()
        stored = await write_alike_and_varied(conn)

    assert stored == FLAGS_WRITTEN
    inserts = {s for s in sent if s.startswith("INSERT INTO flags") and "DO NOTHING" in s}
    assert len(inserts) == 1, inserts  # four batches, each alike in other columns


async def test_pairs_in_reads_the_pairs_given_to_a_statement_built_once(pg_url: str) -> None:
    """``pair_of`` with the pairs bound at each run: a read built once, one text."""
    read = select(tracks.c.district).where(
        pairs_in((tracks.c.matter, tracks.c.district), ("matters", "districts"))
    )
    async with connected(pg_url) as (conn, sent):
        await insert_new(conn, tracks, [track(n) for n in range(6)])
        sent.clear()
        found = []
        for wanted in ([], [("M1", "D1")], [("M0", "D0"), ("M1", "D0"), ("M2", "D5")]):
            given = {"matters": [m for m, _ in wanted], "districts": [d for _, d in wanted]}
            found.append(sorted(r.district for r in await fetch_rows(conn, read, given)))

    assert found == [[], ["D1"], ["D0", "D5"]]  # M1 is not D0's matter
    assert len(set(sent)) == 1, sent


labels = Table(
    "labels",
    metadata,
    Column("label", String(40)),
    Column("n", Integer, primary_key=True),
)
# text values of every kind: the one text a list of them is joined into (by U+001F) cannot
# carry some (the separator inside one, a NULL, a lone empty text, a first text beginning
# with "{"), and the array literal they go as then quotes the others' commas, quotes,
# backslashes, braces, spaces and "NULL"
AWKWARD = ["", "a,b", ' "q" ', "back\\slash", "{braces}", "NULL", "unit\x1fsep", "中文 地址", None]
TEXT_BATCHES = [
    *([v] for v in AWKWARD),
    AWKWARD,
    AWKWARD[::-1],
    ["{first", "second"],
    ["", ""],
    ["plain", "texts", "joined"],
]


def numbered(batches: list[list[Any]]) -> list[tuple[list[Any], list[int]]]:
    """Each batch with its rows' numbers, counted on from the batch before."""
    out, first = [], 0
    for batch in batches:
        out.append((batch, list(range(first, first + len(batch)))))
        first += len(batch)
    return out


async def test_text_values_of_any_kind_are_written_and_found_as_given(pg_url: str) -> None:
    """A batch's texts, whichever form they go in, arrive as given: written by
    ``insert_new`` (a text column first: an array even for one row), found by ``rows_in``
    and ``pairs_in`` on the driver and by ``one_of`` and ``pair_of`` through SQLAlchemy
    (NULL equals nothing, not even itself)."""
    by_pair = select(labels.c.n).where(pairs_in((labels.c.label, labels.c.n), ("texts", "ns")))
    async with connected(pg_url) as (conn, _):
        for batch, ns in numbered(TEXT_BATCHES):
            await insert_new(
                conn, labels, [{"label": v, "n": n} for v, n in zip(batch, ns, strict=True)]
            )
            of_text = [n for v, n in zip(batch, ns, strict=True) if v is not None]
            stored = await conn.execute(select(labels.c.label).where(one_of(conn, labels.c.n, ns)))
            texts = [v for v in batch if v is not None]
            found = await rows_in(conn, (labels.c.n,), labels.c.label, texts)
            paired = await fetch_rows(conn, by_pair, {"texts": batch, "ns": ns})
            pairs = pair_of(conn, (labels.c.label, labels.c.n), zip(batch, ns, strict=True))
            paired_by_sqlalchemy = await conn.execute(select(labels.c.n).where(pairs))

            assert sorted(stored.scalars(), key=repr) == sorted(batch, key=repr)
            assert sorted(r.n for r in found if r.n in ns) == of_text
            assert sorted(r.n for r in paired) == of_text
            assert sorted(paired_by_sqlalchemy.scalars()) == of_text


async def test_joined_texts_are_read_by_a_statement_written_as_sql_as_given(pg_url: str) -> None:
    """``split_texts_sql`` in a statement of its own SQL (intake's batch) reads the texts of
    every kind ``joined_texts`` sends, in their order, whichever form they go in."""
    read = (
        f"SELECT t FROM unnest({split_texts_sql('$1::text')}) WITH ORDINALITY AS v(t, n) ORDER BY n"
    )
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        for batch in [*TEXT_BATCHES, []]:
            assert [r[0] for r in await conn.fetch(read, joined_texts(batch))] == batch
    finally:
        await conn.close()


# events' payloads of every kind (their UTF-8 bytes): JSON never holds a raw 0x1F, but a
# payload that did, a lone empty one or an empty first one go as the array literal,
# which quotes the others' quotes, backslashes, commas and braces
AWKWARD_PAYLOADS = [
    '{"content":"中文 地址","q":"\\"a,b\\"","u":"\\u001f"}'.encode(),
    b'{"back":"\\\\"}',
    b"unit\x1fsep",
    b"",
    b"NULL",
    '{"中":"文"}'.encode(),
]
PAYLOAD_BATCHES = [
    *([p] for p in AWKWARD_PAYLOADS),
    AWKWARD_PAYLOADS,
    AWKWARD_PAYLOADS[::-1],
    [b"", b"{}"],
    [b"{}", b""],
    [b'{"a":1}', b'{"b":2}', b'{"c":"{}"}'],
]


async def test_joined_payloads_are_read_as_the_texts_given(pg_url: str) -> None:
    """``split_payloads_sql`` reads the payloads ``joined_payloads`` sends as their texts,
    in their order, whichever form they go in (the outbox writes, intake's batch)."""
    read = (
        f"SELECT t FROM unnest({split_payloads_sql('$1::bytea')}) WITH ORDINALITY AS v(t, n)"
        " ORDER BY n"
    )
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        for batch in PAYLOAD_BATCHES:
            texts = [p.decode() for p in batch]
            assert [r[0] for r in await conn.fetch(read, joined_payloads(batch))] == texts
    finally:
        await conn.close()


moments = Table(
    "moments",
    metadata,
    Column("n", Integer, primary_key=True),
    Column("at", UTCDateTime),
)
# timestamps of every kind, sent as their microseconds since the Unix epoch (MicrosArray):
# before it, at its last microsecond, at the ends of the years Python holds, in another zone
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTANTS = [
    datetime(2026, 12, 7, 9, 0, 1, 123456, tzinfo=UTC),
    None,
    EPOCH - timedelta(microseconds=1),
    EPOCH,
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1900, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    datetime(2026, 1, 1, 8, 0, 0, 999999, tzinfo=timezone(timedelta(hours=8))),
]
TIME_BATCHES = [[v] for v in INSTANTS] + [INSTANTS, INSTANTS[::-1], [None, None]]


async def test_timestamps_of_any_kind_are_written_and_updated_as_given(pg_url: str) -> None:
    """A batch's timestamps arrive as the instants given, to the microsecond, in the
    rows' order: written by ``insert_new`` and changed by ``update_many`` (each row's
    timestamp moved to another row's)."""
    async with connected(pg_url) as (conn, _):
        for batch, ns in numbered(TIME_BATCHES):
            await insert_new(
                conn, moments, [{"n": n, "at": at} for n, at in zip(ns, batch, strict=True)]
            )
            stored = await conn.execute(select(moments.c.at).where(one_of(conn, moments.c.n, ns)))
            moved = batch[1:] + batch[:1]
            await update_many(
                conn, moments, ["n"], [{"n": n, "at": at} for n, at in zip(ns, moved, strict=True)]
            )
            updated = await conn.execute(
                select(moments.c.at).where(one_of(conn, moments.c.n, ns)).order_by(moments.c.n)
            )

            assert sorted(stored.scalars(), key=repr) == sorted(batch, key=repr)
            assert list(updated.scalars()) == moved
