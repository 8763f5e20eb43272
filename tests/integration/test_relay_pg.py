"""The outbox, its relay and the inbox claim on the real PostgreSQL, where they run fixed
statements of their own: an outbox write belongs to its transaction (rolled back with it),
the relay sends in id order and marks what it sent, records a bus failure and sends the rows
later, and one relay at a time holds a service's outbox (by its lock);
a consumer's claim answers which of its events are new and which of its keys wait behind a
parked event; the inbox forgets the events made before its retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus import RawEvent
from shared.db import Database, SeenBefore, begin_on_driver, in_transaction, outbox_row
from shared.events import Envelope
from shared.relay import OutboxRelay
from tests.unit.shared.test_outbox_inbox import forgets_the_events_made_before_the_cutoff
from tests.unit.test_set_based_consumers import deadline_set, registered

pytestmark = pytest.mark.integration


class Recording:
    """A bus that keeps what it was sent; it fails while ``failing``, and waits for
    ``release`` when one is given (a publish in flight)."""

    def __init__(self) -> None:
        self.sent: list[RawEvent] = []
        self.failing = False
        self.release: asyncio.Event | None = None
        self.publishing = asyncio.Event()

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        self.publishing.set()
        if self.release is not None:
            await self.release.wait()
        if self.failing:
            raise ConnectionError("broker down")
        self.sent.extend(events)


@pytest_asyncio.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database("relayed", pg_url, pool_size=3)
    async with database.engine.begin() as conn:
        await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "relayed"'))
        await conn.run_sync(database.metadata.create_all, [database.outbox])
    try:
        yield database
    finally:
        await database.dispose()


def events(first: int, count: int) -> list[Envelope]:
    return [registered(n) for n in range(first, first + count)]


async def unpublished(db: Database) -> list[tuple[str, int, str | None]]:
    outbox = db.outbox
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.key, outbox.c.attempts, outbox.c.last_error)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
        )
        return [tuple(r) for r in rows]


class Boom(Exception):
    pass


@pytest.mark.parametrize("first_statement", [True, False], ids=["alone", "after-another"])
async def test_an_outbox_write_is_rolled_back_with_its_transaction(
    db: Database, first_statement: bool
) -> None:
    with pytest.raises(Boom):
        async with db.engine.begin() as conn:
            if not first_statement:
                await conn.execute(text("SELECT 1"))
            await db.write_outbox(conn, events(1, 3))
            raise Boom
    assert await unpublished(db) == []
    async with db.engine.begin() as conn:
        await db.write_outbox(conn, events(1, 3))
    assert [key for key, _, _ in await unpublished(db)] == ["TJ0001", "TJ0002", "TJ0003"]


async def test_the_outbox_holds_each_events_own_topic_key_and_payload_alike_or_not(
    db: Database,
) -> None:
    """A column the events of a write all hold alike goes as one value (the topic, the
    key): each row holds its own event's all the same."""
    writes = [
        events(1, 3),  # one topic, keys varied
        [registered(4), deadline_set(4, "dispatch", None)],  # one key, topics varied
        [deadline_set(5, "dispatch", None)],
    ]
    for written in writes:
        async with db.unit_of_work() as uow:
            uow.emit(*written)
    outbox = db.outbox
    async with db.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(outbox.c.event_id, outbox.c.topic, outbox.c.key, outbox.c.payload).order_by(
                    outbox.c.id
                )
            )
        ).all()

    assert [tuple(r) for r in stored] == [
        (str(e.event_id), e.topic, e.key, e.to_json().decode()) for w in writes for e in w
    ]


async def test_the_relay_sends_in_order_marks_sent_and_retries_a_failed_batch(
    db: Database,
) -> None:
    bus = Recording()
    relay = OutboxRelay(db, bus, batch_size=4)  # type: ignore[arg-type]
    written = events(1, 6)
    async with db.unit_of_work() as uow:
        uow.emit(*written)

    bus.failing = True
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    left = await unpublished(db)
    assert len(left) == 6
    assert [(a, e) for _, a, e in left[:4]] == [(1, "ConnectionError('broker down')")] * 4
    assert {a for _, a, _ in left[4:]} == {0}

    bus.failing = False
    assert await relay.relay_once() == 4
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0  # nothing is sent twice
    assert [e.key for e in bus.sent] == [f"TJ{n:04d}" for n in range(1, 7)]
    assert [e.value for e in bus.sent] == [e.to_json() for e in written]
    assert await unpublished(db) == []
    assert (relay.batches, relay.sent) == (2, 6)


async def test_one_relay_at_a_time_holds_the_outbox(db: Database) -> None:
    bus, other_bus = Recording(), Recording()
    bus.release = asyncio.Event()
    relay = OutboxRelay(db, bus)  # type: ignore[arg-type]
    other = OutboxRelay(db, other_bus)  # type: ignore[arg-type]
    async with db.unit_of_work() as uow:
        uow.emit(*events(1, 3))
    in_flight = asyncio.create_task(relay.relay_once())
    await bus.publishing.wait()
    async with db.unit_of_work() as uow:  # written while the first batch is in flight
        uow.emit(*events(4, 2))
    assert await other.relay_once() == 0  # the lock is held: not even the new rows
    bus.release.set()
    assert await in_flight == 3
    assert await other.relay_once() == 2
    assert [e.key for e in bus.sent + other_bus.sent] == [f"TJ{n:04d}" for n in range(1, 6)]


async def test_a_batch_in_flight_is_marked_sent_only_when_its_transaction_commits(
    db: Database,
) -> None:
    """The batch's rows are marked as they are read, before they are sent: until the send
    returns and the marks commit, every other reader sees them unsent, without waiting."""
    bus = Recording()
    bus.release = asyncio.Event()
    relay = OutboxRelay(db, bus)  # type: ignore[arg-type]
    async with db.unit_of_work() as uow:
        uow.emit(*events(1, 3))
    in_flight = asyncio.create_task(relay.relay_once())
    await bus.publishing.wait()
    try:
        assert [key for key, _, _ in await unpublished(db)] == ["TJ0001", "TJ0002", "TJ0003"]
    finally:
        bus.release.set()
    assert await in_flight == 3
    assert await unpublished(db) == []


async def test_a_batch_commits_without_waiting_for_its_wal_flush(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's marks commit with synchronous_commit off (a crash of PostgreSQL that
    loses them sends the batch again, which the inboxes drop); only for that transaction:
    the connection goes back to the service's setting."""
    settings: list[str] = []
    held: list[Any] = []  # the relay's driver connection
    taken = db.driver_connection

    @asynccontextmanager
    async def spied() -> AsyncIterator[tuple[AsyncConnection, Any]]:
        async with taken() as (conn, raw):
            await raw.execute("SET synchronous_commit = on")  # the services' default
            held.append(raw)
            yield conn, raw
            settings.append(await raw.fetchval("SHOW synchronous_commit"))

    class Asking(Recording):
        async def publish_raw(self, events: Sequence[RawEvent]) -> None:
            settings.append(await held[0].fetchval("SHOW synchronous_commit"))
            await super().publish_raw(events)

    monkeypatch.setattr(db, "driver_connection", spied)
    async with db.unit_of_work() as uow:
        uow.emit(*events(1, 2))
    assert await OutboxRelay(db, Asking()).relay_once() == 2  # type: ignore[arg-type]
    assert settings == ["off", "on"]


async def test_the_relay_sends_in_id_order_rows_stored_in_another(db: Database) -> None:
    """A batch's rows are read in the order of their places in the table (the marking
    statement finds them there); they go out in the order of their ids all the same."""
    written = events(1, 4)
    rows = [outbox_row(e) | {"id": n} for n, e in zip([3, 1, 4, 2], written, strict=True)]
    async with db.engine.begin() as conn:
        await conn.execute(insert(db.outbox), rows)
    bus = Recording()
    relay = OutboxRelay(db, bus)  # type: ignore[arg-type]
    assert await relay.relay_once() == 4
    assert [e.key for e in bus.sent] == ["TJ0002", "TJ0004", "TJ0001", "TJ0003"]
    assert await unpublished(db) == []


async def test_the_idle_poll_looks_for_unpublished_rows_without_a_batch(db: Database) -> None:
    relay = OutboxRelay(db, Recording())  # type: ignore[arg-type]
    assert not await relay._any_unpublished()
    async with db.unit_of_work() as uow:
        uow.emit(*events(1, 1))
    assert await relay._any_unpublished()
    assert await relay.relay_once() == 1
    assert not await relay._any_unpublished()


@asynccontextmanager
async def claiming(db: Database, on_driver: bool) -> AsyncIterator[AsyncConnection]:
    """A transaction as a consumer's batch opens it (begun on the driver at once: its
    claim is sent there), or as any other (the claim goes through SQLAlchemy)."""
    async with db.engine.begin() as conn:
        if on_driver:
            await begin_on_driver(conn)
            assert await in_transaction(conn) is not None
        yield conn


@pytest_asyncio.fixture
async def inbox_db(db: Database) -> Database:
    async with db.engine.begin() as conn:
        await conn.run_sync(db.metadata.create_all, [db.inbox, db.dead_letters])
    return db


ON_DRIVER = pytest.mark.parametrize("on_driver", [True, False], ids=["driver", "sqlalchemy"])


async def _park(db: Database, *letters: tuple[str, str, int, int | None]) -> None:
    """Dead letters of the consumer "c", each (event id, key, attempts, behind)."""
    now = datetime.now(UTC)
    parked = {"consumer": "c", "event_type": "t", "topic": "hotline.tickets", "payload": "{}"}
    parked |= {"error": "e", "state": "parked", "first_failed_at": now, "last_failed_at": now}
    rows = [
        {**parked, "event_id": e, "key": k, "attempts": a, "behind": b} for e, k, a, b in letters
    ]
    async with db.engine.begin() as conn:
        await conn.execute(insert(db.dead_letters), rows)


@ON_DRIVER
async def test_a_claim_answers_the_new_events_and_the_parked_heads_of_its_keys(
    inbox_db: Database, on_driver: bool
) -> None:
    db = inbox_db
    await _park(
        db,
        ("p1", "TJ2", 3, None),
        ("p2", "TJ2", 0, 1),
        ("p3", "TJ3", 3, None),
        # keys the joined text cannot carry (the keys go as an array literal then)
        ("p4", "{TJ4", 3, None),
        ("p5", "TJ\x1f5", 3, None),
    )
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["a", "b", "c"], ["TJ1"]) == ({"a", "b", "c"}, {})
    async with claiming(db, on_driver) as conn:
        new, heads = await db.claim_unparked(conn, "c", ["b", "d", "c", "e"], ["TJ1", "TJ2"])
    assert (new, heads) == ({"d", "e"}, {"TJ2": 1})
    for keys, found in [
        (["{TJ4", "TJ1"], {"{TJ4": 4}),
        (["TJ1", "TJ\x1f5", "TJ3"], {"TJ\x1f5": 5, "TJ3": 3}),
        (["TJ", "5", "{TJ4}"], {}),  # (parts of the keys are not the keys)
    ]:
        async with claiming(db, on_driver) as conn:
            assert await db.claim_unparked(conn, "c", ["a"], keys) == (set(), found)
    async with claiming(db, on_driver) as conn:  # another consumer has its own inbox
        assert await db.claim_unparked(conn, "other", ["a", "d"], ["TJ2"]) == ({"a", "d"}, {})


async def test_the_inbox_forgets_the_events_made_before_the_cutoff(inbox_db: Database) -> None:
    await forgets_the_events_made_before_the_cutoff(inbox_db)


@ON_DRIVER
async def test_a_claim_of_events_taken_for_new_refuses_one_seen_before(
    inbox_db: Database, on_driver: bool
) -> None:
    """``all_new`` inserts the ids without ON CONFLICT: all new, they are claimed (with the
    parked heads as ever); one seen before fails the claim (``SeenBefore``) and nothing
    of it stays, so the same batch claimed the other way then finds the new ones."""
    db = inbox_db
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["a", "b"], ["TJ1"], all_new=True) == (
            {"a", "b"},
            {},
        )
    with pytest.raises(SeenBefore):
        async with claiming(db, on_driver) as conn:
            await db.claim_unparked(conn, "c", ["c", "b", "d"], ["TJ1"], all_new=True)
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["c", "b", "d"], ["TJ1"]) == ({"c", "d"}, {})


@ON_DRIVER
async def test_a_claim_of_events_taken_for_new_returns_the_parked_heads_of_its_keys(
    inbox_db: Database, on_driver: bool
) -> None:
    """``all_new``'s claim returns no row for the ids it claims (it claims all or fails)
    but still the parked heads of the batch's keys, and what it claimed is seen before
    by the next claim."""
    db = inbox_db
    await _park(db, ("p1", "TJ2", 3, None), ("p2", "TJ2", 0, 1), ("p3", "TJ3", 3, None))
    async with claiming(db, on_driver) as conn:
        claimed = await db.claim_unparked(conn, "c", ["a", "b"], ["TJ1", "TJ2"], all_new=True)
    assert claimed == ({"a", "b"}, {"TJ2": 1})
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["b", "z"], ["TJ3"]) == ({"z"}, {"TJ3": 3})


@ON_DRIVER
async def test_a_claim_is_rolled_back_with_its_batch(inbox_db: Database, on_driver: bool) -> None:
    """A batch that fails after its claim (an outage) leaves its events unclaimed: they are
    new when the batch comes again."""
    db = inbox_db
    with pytest.raises(Boom):
        async with claiming(db, on_driver) as conn:
            assert await db.claim_unparked(conn, "c", ["a", "b"], ["TJ1"]) == ({"a", "b"}, {})
            raise Boom
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["b", "a"], ["TJ1"]) == ({"a", "b"}, {})
    async with claiming(db, on_driver) as conn:
        assert await db.claim_unparked(conn, "c", ["a", "b"], ["TJ1"]) == (set(), {})
