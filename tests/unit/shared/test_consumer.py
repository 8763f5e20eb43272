"""A service's consumer: a batch in one transaction, each event exactly once, a failing
event parked as a dead letter (with the events of its ticket behind it), an outage retried
whole."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.bus import LogBus, RawEvent, Unparseable
from shared.clock import ManualClock
from shared.consumer import Consumer, is_outage
from shared.db import Database, UnitOfWork
from shared.errors import IllegalTransition
from shared.events import (
    EVENT_TYPES,
    TOPIC_TICKETS,
    Envelope,
    Event,
    Header,
    Received,
    parse_payload,
    parse_payloads,
)
from shared.relay import OutboxRelay
from shared.service import ServiceContext
from shared.settings import Settings
from tests.conftest import ROOT, RecordingBus

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class Deadlock(Exception):
    sqlstate = "40P01"  # as asyncpg reports it: another instance's batch was in the way


def event(ticket: str, step: str, **payload: Any) -> Envelope:
    return Envelope(
        type="ticket.noted",
        occurred_at=NOW,
        ticket_id=ticket,
        producer="intake",
        payload={"step": step, **payload},
    )


class Service:
    """A stand-in service whose handler notes each event (an outbox row) and fails while
    the event's step is in ``broken``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.broken: set[str] = set()
        self.handled: list[str] = []
        self.runs: list[list[str]] = []
        settings = Settings(env="test")
        bus = RecordingBus()
        self.ctx = ServiceContext(
            "dispatch", settings, db, bus, ManualClock(NOW), OutboxRelay(db, bus)
        )
        self.consumer = Consumer(
            self.ctx, {"ticket.noted": self.on_noted}, max_attempts=3, retry_delay=0
        )

    async def on_noted(self, ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
        step = envelope.payload["step"]
        uow.emit(
            Envelope(
                type="ticket.seen",
                occurred_at=NOW,
                ticket_id=envelope.ticket_id,
                producer="dispatch",
                payload={"step": step},
            )
        )
        # a statement that then fails: its effect must not survive
        await uow.conn.execute(
            self.db.inbox.insert().values(consumer=f"probe-{step}", event_id="x")
        )
        if step in self.broken:
            raise TypeError(f"cannot handle {step}")
        if envelope.payload.get("outage"):
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database is down"))
        if envelope.payload.get("deadlock"):
            raise DBAPIError("INSERT INTO hotspots", {}, Deadlock("deadlock detected"))
        if envelope.payload.get("driver"):  # a statement sent on asyncpg's connection itself
            raise DRIVER_ERRORS[envelope.payload["driver"]]("from the driver")
        # what committed (a batch may run a handler whose work is rolled back and redone)
        uow.after_commit.append(lambda: self.handled.append(step))

    async def on_many_noted(
        self, ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]
    ) -> None:
        """The set-based twin of ``on_noted``: the same effects for a run of events."""
        self.runs.append([e.payload["step"] for e in batch])
        for envelope in batch:
            await self.on_noted(ctx, uow, envelope)

    async def outbox_steps(self) -> list[str]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(self.db.outbox.c.payload))).scalars().all()
        return [Envelope.from_json(r).payload["step"] for r in rows]

    async def probes(self) -> int:
        inbox = self.db.inbox
        async with self.db.engine.connect() as conn:
            n = await conn.scalar(
                select(func.count()).select_from(inbox).where(inbox.c.consumer.like("probe-%"))
            )
        return int(n or 0)


MIGRATIONS = ROOT / "services" / "intake" / "migrations"
DRIVER_ERRORS = {
    "connection lost": asyncpg.exceptions.ConnectionDoesNotExistError,
    "deadlock": asyncpg.exceptions.DeadlockDetectedError,
    "serialization": asyncpg.exceptions.SerializationError,
}


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    db = Database("dispatch", "sqlite+aiosqlite:///:memory:")
    await db.migrate(MIGRATIONS)
    yield Service(db)
    await db.dispose()


async def test_a_failing_event_is_parked_and_the_rest_of_the_batch_is_handled(
    service: Service,
) -> None:
    service.broken = {"b1"}
    batch = [event("TJ1", "a1"), event("TJ2", "b1"), event("TJ3", "c1")]

    await service.consumer.handle_batch(batch)

    assert service.handled == ["a1", "c1"]
    assert await service.outbox_steps() == ["a1", "c1"]
    assert await service.probes() == 2  # the failed attempts left nothing behind
    [parked] = await service.consumer.parked()
    assert parked["event_id"] == str(batch[1].event_id)
    assert parked["attempts"] == 3
    assert parked["error"] == "TypeError: cannot handle b1"
    assert parked["state"] == "parked"
    assert parked["first_failed_at"] is not None and parked["last_failed_at"] is not None


async def test_a_redelivered_batch_changes_nothing(service: Service) -> None:
    service.broken = {"b1"}
    batch = [event("TJ1", "a1"), event("TJ2", "b1")]
    await service.consumer.handle_batch(batch)
    service.broken = set()

    await service.consumer.handle_batch(batch)

    assert service.handled == ["a1"]
    assert len(await service.consumer.parked()) == 1


async def test_a_batch_is_claimed_as_new_and_again_only_when_it_holds_a_redelivery(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path first claims a batch's events as new ones (no ON CONFLICT); an event
    handled before fails that claim, and the batch is claimed again, the old event passed
    over and the new ones handled once."""
    claims: list[bool] = []
    claim = service.db.claim_unparked

    async def noted(*args: Any, all_new: bool = False) -> Any:
        claims.append(all_new)
        return await claim(*args, all_new=all_new)

    monkeypatch.setattr(service.db, "claim_unparked", noted)
    first = [event("TJ1", "a1"), event("TJ2", "b1")]
    await service.consumer.handle_batch(first)
    assert claims == [True]

    await service.consumer.handle_batch([event("TJ3", "c1"), first[1], event("TJ4", "d1")])

    assert claims == [True, True, False]
    assert service.handled == ["a1", "b1", "c1", "d1"]
    assert await service.outbox_steps() == ["a1", "b1", "c1", "d1"]


async def test_later_events_of_a_parked_ticket_wait_behind_it_and_run_in_order_on_retry(
    service: Service,
) -> None:
    service.broken = {"1"}
    await service.consumer.handle_batch(
        [event("TJ1", "1"), event("TJ1", "2"), event("TJ2", "other")]
    )
    await service.consumer.handle_batch([event("TJ1", "3")])
    parked = await service.consumer.parked()
    assert [(p["key"], p["attempts"]) for p in parked] == [("TJ1", 3), ("TJ1", 0), ("TJ1", 0)]
    head = parked[0]["id"]
    assert [p["behind"] for p in parked] == [None, head, head]
    assert service.handled == ["other"]

    with pytest.raises(IllegalTransition):
        await service.consumer.retry(parked[1]["id"], "admin")
    service.broken = set()
    retried = await service.consumer.retry(head, "admin")

    assert [r["state"] for r in retried] == ["retried"] * 3
    assert service.handled == ["other", "1", "2", "3"]
    assert await service.outbox_steps() == ["other", "1", "2", "3"]
    assert await service.consumer.parked() == []
    await service.consumer.handle_batch([event("TJ1", "4")])
    assert service.handled[-1] == "4"


async def test_a_retry_that_fails_again_keeps_the_rest_parked_behind_it(
    service: Service,
) -> None:
    service.broken = {"1", "2"}
    await service.consumer.handle_batch([event("TJ1", "1"), event("TJ1", "2"), event("TJ1", "3")])
    head = (await service.consumer.parked())[0]["id"]
    service.broken = {"2"}

    retried = await service.consumer.retry(head, "admin")

    assert [(r["state"], r["attempts"]) for r in retried] == [("retried", 3), ("parked", 1)]
    still = await service.consumer.parked()
    assert [p["behind"] for p in still] == [None, still[0]["id"]]
    assert service.handled == ["1"]


async def test_discarding_a_parked_event_releases_the_events_behind_it(service: Service) -> None:
    service.broken = {"1"}
    await service.consumer.handle_batch([event("TJ1", "1"), event("TJ1", "2")])
    head = (await service.consumer.parked())[0]["id"]

    result = await service.consumer.discard(head, "admin")

    assert [r["state"] for r in result] == ["discarded", "retried"]
    assert service.handled == ["2"]
    assert await service.consumer.parked() == []
    with pytest.raises(IllegalTransition):
        await service.consumer.discard(head, "admin")


async def test_an_outage_is_not_the_events_fault_the_whole_batch_is_retried(
    service: Service,
) -> None:
    batch = [event("TJ1", "a1"), event("TJ2", "b1", outage=True)]

    with pytest.raises(OperationalError):
        await service.consumer.handle_batch(batch)

    assert await service.outbox_steps() == []
    assert await service.consumer.parked() == []
    await service.consumer.handle_batch(batch[:1])  # nothing was claimed: it runs again
    assert service.handled == ["a1"]
    assert await service.outbox_steps() == ["a1"]


async def test_a_deadlock_with_another_instance_retries_the_batch_and_parks_nothing(
    service: Service,
) -> None:
    batch = [event("TJ1", "a1"), event("TJ2", "b1", deadlock=True)]

    with pytest.raises(DBAPIError):
        await service.consumer.handle_batch(batch)

    assert await service.consumer.parked() == []
    assert await service.outbox_steps() == []


@pytest.mark.parametrize("error", sorted(DRIVER_ERRORS))
async def test_an_outage_seen_by_the_driver_itself_retries_the_batch_and_parks_nothing(
    service: Service, error: str
) -> None:
    batch = [event("TJ1", "a1"), event("TJ2", "b1", driver=error)]

    with pytest.raises(DRIVER_ERRORS[error]):
        await service.consumer.handle_batch(batch)

    assert await service.consumer.parked() == []
    assert await service.outbox_steps() == []


async def test_a_driver_error_of_the_events_own_is_not_an_outage() -> None:
    assert not is_outage(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not is_outage(asyncpg.exceptions.DataError("invalid input"))


async def test_runs_of_a_type_are_handled_set_based_and_a_ticket_never_twice_in_a_run(
    service: Service,
) -> None:
    service.consumer.many = {"ticket.noted": service.on_many_noted}
    batch = [event("TJ1", "a"), event("TJ2", "b"), event("TJ1", "c"), event("TJ3", "d")]

    await service.consumer.handle_batch(batch)

    # TJ1's second event waits for a run of its own, after its first
    assert service.runs == [["a", "b", "d"], ["c"]]
    assert service.handled == ["a", "b", "d", "c"]
    assert await service.outbox_steps() == ["a", "b", "d", "c"]
    assert await service.probes() == 4


def test_runs_of_events_of_distinct_tickets_go_by_type_in_the_order_types_first_come() -> None:
    """``_runs``: a batch of one event a ticket, every type set-based, is one layer: a run a
    type, in the order the types first come, each run in the batch's order. An event of a
    type without a set-based handler, or a ticket's second event, cuts layers as ever."""
    from shared.consumer import _runs

    def of(kind: str, ticket: str) -> Envelope:
        return event(ticket, ticket).model_copy(update={"type": kind})

    def tickets(runs: list[list[Any]]) -> list[list[str]]:
        return [[e.ticket_id for e in run] for run in runs]

    many: dict[str, Any] = {"ticket.b": None, "ticket.a": None}
    batch = [of("ticket.b", "T1"), of("ticket.a", "T2"), of("ticket.b", "T3"), of("ticket.a", "T4")]
    assert tickets(_runs(batch, many)) == [["T1", "T3"], ["T2", "T4"]]
    alone = [of("ticket.a", "T1"), of("ticket.c", "T2"), of("ticket.a", "T3")]
    assert tickets(_runs(alone, many)) == [["T1"], ["T2"], ["T3"]]
    again = [of("ticket.a", "T1"), of("ticket.b", "T2"), of("ticket.b", "T1")]
    assert tickets(_runs(again, many)) == [["T1"], ["T2"], ["T1"]]


def test_id_texts_are_the_ids_as_str_writes_them() -> None:
    """``id_texts`` (the ids of a batch written at once) gives each id's ``str``, the text
    the inbox holds: random ids, the smallest and the largest, in the batch's order."""
    import uuid

    from shared.consumer import id_texts

    ids = [uuid.uuid4() for _ in range(500)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    ids += [uuid.UUID(int=1 << n) for n in range(128)]
    events = [event("TJ1", "a").model_copy(update={"event_id": i}) for i in ids]
    assert id_texts(events) == [str(i) for i in ids]
    assert id_texts([]) == []


async def test_an_event_delivered_twice_in_one_batch_is_handled_once(service: Service) -> None:
    batch = [event("TJ1", "a"), event("TJ2", "b")]
    again = batch[0].model_copy(update={"ticket_id": "TJ9"})  # the same id, read again

    await service.consumer.handle_batch([*batch, again])

    assert service.handled == ["a", "b"]
    assert await service.outbox_steps() == ["a", "b"]


async def test_a_poison_event_in_a_set_based_run_parks_only_itself_and_its_ticket(
    service: Service,
) -> None:
    service.consumer.many = {"ticket.noted": service.on_many_noted}
    service.broken = {"b"}
    batch = [event("TJ1", "a"), event("TJ2", "b"), event("TJ2", "c"), event("TJ3", "d")]

    await service.consumer.handle_batch(batch)

    assert service.runs == [["a", "b", "d"]]  # tried set-based, rolled back, one by one
    assert service.handled == ["a", "d"]
    assert await service.outbox_steps() == ["a", "d"]
    assert await service.probes() == 2  # the rolled-back run left nothing behind
    parked = await service.consumer.parked()
    assert [(p["key"], p["attempts"]) for p in parked] == [("TJ2", 3), ("TJ2", 0)]


async def idle_steps(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> set[str]:
    """A service's ``of_no_effect``: the events noted as idle would change nothing; what it
    read stays with the batch's unit of work."""
    uow.memo["read before the claim"] = True
    return {str(e.event_id) for e in batch if e.payload.get("idle")}


async def inbox_ids(service: Service) -> set[str]:
    inbox = service.db.inbox
    async with service.db.engine.connect() as conn:
        rows = await conn.execute(select(inbox.c.event_id).where(inbox.c.consumer == "dispatch"))
    return set(rows.scalars())


@pytest.mark.parametrize("set_based", [False, True])
async def test_events_of_no_effect_are_neither_run_nor_recorded_and_the_rest_see_the_read(
    service: Service, set_based: bool
) -> None:
    memos: list[bool] = []

    async def on_noted(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
        memos.append(uow.memo.get("read before the claim", False))
        await service.on_noted(ctx, uow, envelope)

    async def on_many_noted(
        ctx: ServiceContext, uow: UnitOfWork, envelopes: Sequence[Envelope]
    ) -> None:
        for envelope in envelopes:
            await on_noted(ctx, uow, envelope)

    many = {"ticket.noted": on_many_noted} if set_based else {}
    service.consumer = Consumer(
        service.ctx,
        {"ticket.noted": on_noted},
        many=many,
        of_no_effect=idle_steps,
        retry_delay=0,
    )
    batch = [event("TJ1", "a"), event("TJ2", "b", idle=True), event("TJ1", "c", idle=True)]

    await service.consumer.handle_batch(batch)
    await service.consumer.handle_batch([event("TJ3", "d", idle=True)])

    assert service.handled == ["a"]
    assert await inbox_ids(service) == {str(batch[0].event_id)}
    assert await service.outbox_steps() == ["a"]
    assert memos == [True]


async def test_an_event_of_no_effect_waits_behind_no_parked_event(service: Service) -> None:
    service.consumer = Consumer(
        service.ctx, {"ticket.noted": service.on_noted}, of_no_effect=idle_steps, retry_delay=0
    )
    service.broken = {"1"}
    await service.consumer.handle_batch([event("TJ1", "1"), event("TJ1", "2", idle=True)])
    await service.consumer.handle_batch([event("TJ1", "3"), event("TJ1", "4", idle=True)])

    parked = await service.consumer.parked()
    steps = [(Envelope.from_json(p["payload"]).payload["step"], p["attempts"]) for p in parked]
    assert steps == [("1", 3), ("3", 0)]
    service.broken = set()
    await service.consumer.retry(parked[0]["id"], "admin")
    assert service.handled == ["1", "3"]
    assert len(await inbox_ids(service)) == 2


async def test_the_embedded_log_delivers_again_what_a_crash_left_uncommitted_and_it_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The durable log stores a group's position after the handler has committed the batch's
    effects. A crash in between (here the position is never stored) delivers the batch again
    after a restart; the consumer's inbox makes that second delivery change nothing."""
    delivered: list[list[str]] = []

    async def start(crashing: bool) -> tuple[LogBus, Service]:
        db = Database("dispatch", f"sqlite+aiosqlite:///{tmp_path}/dispatch.db")
        await db.migrate(MIGRATIONS)
        service = Service(db)

        async def handle(batch: Sequence[Envelope]) -> None:
            delivered.append([e.payload["step"] for e in batch])
            await service.consumer.handle_batch(batch)

        bus = LogBus(tmp_path / "bus.db")
        bus.subscribe("dispatch", [TOPIC_TICKETS], handle)
        if crashing:

            async def dies_first(*_: Any) -> None:
                await asyncio.Event().wait()

            monkeypatch.setattr(bus, "_commit", dies_first)
        await bus.start()
        return bus, service

    bus, first = await start(crashing=True)
    await bus.publish([event("TJ1", "a1"), event("TJ2", "b1")])
    for _ in range(200):
        if first.handled == ["a1", "b1"]:
            break
        await asyncio.sleep(0.01)
    assert first.handled == ["a1", "b1"]  # the effects are committed, the position is not
    await bus.stop()
    await first.db.dispose()

    bus, second = await start(crashing=False)
    await bus.publish([event("TJ3", "c1")])
    await bus.drain()
    await bus.stop()

    assert delivered == [["a1", "b1"], ["a1", "b1", "c1"]]  # the log delivered them again
    assert second.handled == ["c1"]
    assert await second.outbox_steps() == ["a1", "b1", "c1"]
    assert await second.probes() == 3
    assert await second.consumer.parked() == []  # nor tried again and failed
    await second.db.dispose()


# a requester's phone in each: kept in the dead letter (admin only), never in a log line
NOT_JSON = "第3号楼停水 13920001234 {".encode()
NOT_UTF8 = b"\xff\xfe\x00\x9c 13920001234"
NO_ID = b'{"type":"ticket.noted","ticket_id":"TJ1","payload":{"phone":"13920001234"}}'


async def on_the_log(
    tmp_path: Path,
    *,
    crashing: bool = False,
    monkeypatch: pytest.MonkeyPatch | None = None,
    models: Mapping[str, type[Event]] | None = None,
) -> tuple[LogBus, Service]:
    """The stand-in service consuming the embedded log as a service does (its messages
    that are not events go to ``park_unparseable``; the types in ``models`` are read as
    them); ``crashing``: it never stores its position (a crash after each batch's
    transaction)."""
    db = Database("dispatch", f"sqlite+aiosqlite:///{tmp_path}/dispatch.db")
    await db.migrate(MIGRATIONS)
    service = Service(db)
    bus = LogBus(tmp_path / "bus.db")
    bus.subscribe(
        "dispatch",
        [TOPIC_TICKETS],
        service.consumer.handle_batch,
        types={"ticket.noted"},
        unparseable=service.consumer.park_unparseable,
        models=models,
    )
    if crashing:
        assert monkeypatch is not None

        async def dies_first(*_: Any) -> None:
            await asyncio.Event().wait()

        monkeypatch.setattr(bus, "_commit", dies_first)
    await bus.start()
    return bus, service


async def test_a_message_that_is_not_an_event_is_parked_at_once_and_the_log_moves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bus, service = await on_the_log(tmp_path)
    try:
        await bus.publish([event("TJ1", "a1")])
        await bus.publish_raw(
            [RawEvent(TOPIC_TICKETS, "TJ1", raw) for raw in (NOT_JSON, NOT_UTF8, NO_ID)]
        )
        await bus.publish([event("TJ1", "b1")])
        await bus.drain(timeout=10)

        # the good events on both sides, of the same ticket, are handled: nothing waits
        assert service.handled == ["a1", "b1"]
        assert bus.lag() == {"dispatch": 0}
        parked = await service.consumer.parked()
        assert [p["event_type"] for p in parked] == ["unparseable"] * 3
        assert [p["attempts"] for p in parked] == [1, 1, 1]  # at once: no retries
        assert [p["behind"] for p in parked] == [None] * 3
        assert {p["key"] for p in parked}.isdisjoint({"TJ1"})
        assert [p["topic"] for p in parked] == [TOPIC_TICKETS] * 3
        payloads = [orjson.loads(p["payload"]) for p in parked]
        assert [(d["offset"], d["partition"], d["key"]) for d in payloads] == [
            (2, None, "TJ1"),
            (3, None, "TJ1"),
            (4, None, "TJ1"),
        ]
        # the bytes as they were: text where they are UTF-8, else base64
        assert (payloads[0]["raw_encoding"], payloads[0]["raw"]) == ("utf-8", NOT_JSON.decode())
        assert payloads[1]["raw_encoding"] == "base64"
        assert base64.b64decode(payloads[1]["raw"]) == NOT_UTF8
        assert payloads[2]["raw"].encode() == NO_ID
        assert parked[2]["error"] == "ValueError: event without event_id"
        assert all(p["error"] for p in parked)
    finally:
        await bus.stop()
        await service.db.dispose()
    lines = [r for r in caplog.records if "parked" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        "message that is not an event parked as a dead letter"
    ] * 3
    assert [(r.levelname, r.offset) for r in lines] == [("ERROR", 2), ("ERROR", 3), ("ERROR", 4)]  # type: ignore[attr-defined]
    # no log line says what the messages held
    assert not [r for r in caplog.records if "13920001234" in str(r.__dict__)]


class Noted(Event):
    """``ticket.noted`` as a model (registered by the tests that read it so)."""

    TYPE = "ticket.noted"
    step: str


async def test_a_set_based_handler_gets_its_events_read_and_a_malformed_one_is_parked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus reads a set-based handler's events as their models; one whose payload the
    model refuses, or of a version newer than known, comes as an ``Envelope``, fails when
    parsed, and is parked as before (its bytes as they came), the rest of the batch handled."""
    monkeypatch.setitem(EVENT_TYPES, Noted.TYPE, Noted)
    bus, service = await on_the_log(tmp_path, models={Noted.TYPE: Noted})
    given: list[type] = []

    async def on_one(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
        parse_payload(envelope)
        await service.on_noted(ctx, uow, envelope)

    async def on_many(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
        given.extend(type(e) for e in batch)
        service.runs.append([noted.step for noted in parse_payloads(batch, Noted)])
        for header in batch:
            await service.on_noted(ctx, uow, header.as_envelope())

    service.consumer.handlers = {Noted.TYPE: on_one}
    service.consumer.many = {Noted.TYPE: on_many}
    malformed = event("TJ2", "b").model_copy(update={"payload": {"stage": "b"}})
    newer = event("TJ3", "c").model_copy(update={"version": 2})
    try:
        await bus.publish([event("TJ1", "a"), malformed, newer, event("TJ4", "d")])
        await bus.drain(timeout=10)

        assert given == [Received[Noted], Envelope, Envelope, Received[Noted]]
        assert service.handled == ["a", "d"]
        assert await service.outbox_steps() == ["a", "d"]
        parked = await service.consumer.parked()
        assert [(p["key"], p["attempts"]) for p in parked] == [("TJ2", 3), ("TJ3", 3)]
        assert parked[0]["error"].startswith("ValidationError")
        assert "newer than this service knows" in parked[1]["error"]
        assert [p["payload"].encode() for p in parked] == [malformed.to_json(), newer.to_json()]
    finally:
        await bus.stop()
        await service.db.dispose()


async def test_a_message_that_is_not_an_event_is_parked_once_however_often_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Delivered again after a crash, or published again as it was: one dead letter."""
    caplog.set_level(logging.ERROR, logger="hotline.consumer")
    bus, first = await on_the_log(tmp_path, crashing=True, monkeypatch=monkeypatch)
    await bus.publish([event("TJ1", "a1")])
    await bus.publish_raw([RawEvent(TOPIC_TICKETS, "TJ1", NOT_JSON)])
    for _ in range(200):
        if await first.consumer.parked():
            break
        await asyncio.sleep(0.01)
    [parked] = await first.consumer.parked()
    await bus.stop()
    await first.db.dispose()

    monkeypatch.undo()
    bus, second = await on_the_log(tmp_path)
    try:
        await bus.publish_raw([RawEvent(TOPIC_TICKETS, "TJ1", NOT_JSON)])  # once more
        await bus.publish([event("TJ2", "c1")])
        await bus.drain(timeout=10)

        assert await second.consumer.parked() == [parked]
        assert await second.outbox_steps() == ["a1", "c1"]
        # discarded, it stays discarded when it comes again
        await second.consumer.discard(parked["id"], "admin")
        await bus.publish_raw([RawEvent(TOPIC_TICKETS, "TJ1", NOT_JSON)])
        await bus.drain(timeout=10)
        [gone] = await second.consumer.parked(state=None)
        assert (gone["id"], gone["state"]) == (parked["id"], "discarded")
    finally:
        await bus.stop()
        await second.db.dispose()
    assert len([r for r in caplog.records if "parked" in r.getMessage()]) == 1


async def test_retrying_a_message_that_still_is_not_an_event_is_refused_and_changes_nothing(
    service: Service,
) -> None:
    await service.consumer.park_unparseable(
        [Unparseable(TOPIC_TICKETS, NOT_UTF8, "JSONDecodeError: not UTF-8", offset=7)]
    )
    [parked] = await service.consumer.parked()

    with pytest.raises(IllegalTransition) as refused:
        await service.consumer.retry(parked["id"], "admin")

    assert refused.value.status == 409
    assert "still not an event" in refused.value.detail
    assert await service.consumer.parked() == [parked]
    [discarded] = await service.consumer.discard(parked["id"], "admin")
    assert discarded["state"] == "discarded"
    assert await service.consumer.parked() == []


async def test_a_parked_message_that_can_be_read_now_runs_once_on_retry(service: Service) -> None:
    """A consumer that could not read an event (a newer version, say) parks it; retried
    after one that can is deployed, it runs as that event, exactly once."""
    readable = event("TJ1", "late")
    await service.consumer.park_unparseable(
        [Unparseable(TOPIC_TICKETS, readable.to_json(), "not a valid envelope: version")]
    )
    [parked] = await service.consumer.parked()

    [retried] = await service.consumer.retry(parked["id"], "admin")
    await service.consumer.handle_batch([readable])  # the event itself, delivered again

    assert retried["state"] == "retried"
    assert service.handled == ["late"]
    assert await service.outbox_steps() == ["late"]
    assert await service.consumer.parked() == []  # nor run again (and failed on its probe)


async def park_unread(service: Service, readable: Envelope) -> int:
    """``readable`` parked as a message this consumer could not read (a newer version)."""
    await service.consumer.park_unparseable(
        [Unparseable(TOPIC_TICKETS, readable.to_json(), "not a valid envelope: version")]
    )
    [unread] = [p for p in await service.consumer.parked() if p["event_type"] == "unparseable"]
    return int(unread["id"])


async def test_a_message_read_on_retry_waits_behind_its_tickets_parked_events(
    service: Service,
) -> None:
    """Read at last, it is an event of a ticket whose earlier events are parked: it is
    parked behind them, as an event of that ticket arriving now would be, and runs after
    them, in order."""
    service.broken = {"1"}
    await service.consumer.handle_batch([event("TJ1", "1"), event("TJ1", "2")])
    third = event("TJ1", "3")
    late = await park_unread(service, third)
    head = (await service.consumer.parked())[0]["id"]

    [waiting] = await service.consumer.retry(late, "admin")

    assert (waiting["state"], waiting["key"], waiting["behind"]) == ("parked", "TJ1", head)
    assert waiting["event_type"] == "ticket.noted"
    assert service.handled == []
    with pytest.raises(IllegalTransition):  # it waits its turn
        await service.consumer.retry(late, "admin")
    service.broken = set()
    retried = await service.consumer.retry(head, "admin")
    assert [r["state"] for r in retried] == ["retried"] * 3
    assert service.handled == ["1", "2", "3"]
    assert await service.outbox_steps() == ["1", "2", "3"]
    await service.consumer.handle_batch([third])  # delivered again, readable: not twice
    assert service.handled == ["1", "2", "3"]
    assert await service.consumer.parked() == []


async def test_a_message_read_on_retry_that_was_parked_first_heads_its_tickets_queue(
    service: Service,
) -> None:
    """Parked unread before its ticket's later events were parked: it came first, so it
    runs first, and the ticket's parked events after it, in order."""
    first = await park_unread(service, event("TJ1", "1"))
    service.broken = {"2"}
    await service.consumer.handle_batch([event("TJ1", "2"), event("TJ1", "3")])
    service.broken = {"3"}

    retried = await service.consumer.retry(first, "admin")

    assert [(r["state"], r["key"]) for r in retried] == [
        ("retried", "TJ1"),
        ("retried", "TJ1"),
        ("parked", "TJ1"),
    ]
    assert service.handled == ["1", "2"]  # "3" fails again: it heads what is left
    [still] = await service.consumer.parked()
    assert (still["behind"], still["attempts"]) == (None, 1)
