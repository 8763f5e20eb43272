"""The transactional outbox, its relay, and the idempotent inbox."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shared import relay as relay_module
from shared.bus import RawEvent
from shared.db import Database
from shared.events import Envelope, MatterPublished
from shared.events.base import event_uuid
from shared.logging import Outage
from shared.relay import OutboxRelay
from tests.conftest import RecordingBus, at


def matter(code: str) -> MatterPublished:
    return MatterPublished(code=code, name="供热温度不达标", default_urgency="livelihood")


def envelope(code: str, key: str = "TJ1"):  # noqa: ANN201
    return matter(code).envelope(producer="test", occurred_at=datetime.now(UTC), ticket_id=key)


async def pending(db: Database) -> int:
    async with db.engine.connect() as conn:
        return (
            await conn.scalar(
                select(func.count())
                .select_from(db.outbox)
                .where(db.outbox.c.published_at.is_(None))
            )
            or 0
        )


async def test_events_are_written_with_the_state_and_published_by_the_relay(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    async with intake_db.unit_of_work() as uow:
        uow.emit(envelope("A"), envelope("B"))
    assert await pending(intake_db) == 2
    relay = OutboxRelay(intake_db, recording_bus)
    assert await relay.relay_once() == 2
    assert [e.payload["code"] for e in recording_bus.published] == ["A", "B"]
    assert await pending(intake_db) == 0
    assert await relay.relay_once() == 0  # nothing is sent twice


async def test_a_rolled_back_transaction_leaves_no_event(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    with pytest.raises(RuntimeError):
        async with intake_db.unit_of_work() as uow:
            uow.emit(envelope("A"))
            raise RuntimeError("validation failed half-way")
    assert await pending(intake_db) == 0


async def test_a_bus_outage_delays_events_but_loses_none(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    async with intake_db.unit_of_work() as uow:
        uow.emit(envelope("A"), envelope("B"))
    relay = OutboxRelay(intake_db, recording_bus)
    recording_bus.failing = True
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    async with intake_db.engine.connect() as conn:
        attempts = (await conn.execute(select(intake_db.outbox.c.attempts))).scalars().all()
    assert attempts == [1, 1]
    assert await pending(intake_db) == 2
    recording_bus.failing = False
    await relay.drain()
    assert [e.payload["code"] for e in recording_bus.published] == ["A", "B"]


async def test_a_bus_outage_is_logged_when_it_starts_and_when_it_ends_not_per_retry(
    intake_db: Database, recording_bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.relay")
    async with intake_db.unit_of_work() as uow:
        uow.emit(envelope("A"))
    tries = 0
    publish = recording_bus.publish

    async def down_for_three_tries(events: Sequence[Envelope]) -> None:
        nonlocal tries
        tries += 1
        if tries <= 3:
            raise ConnectionError("broker unreachable")
        await publish(events)

    recording_bus.publish = down_for_three_tries  # type: ignore[method-assign]
    relay = OutboxRelay(intake_db, recording_bus, poll_seconds=0.05)
    relay._outage = Outage(logging.getLogger("hotline.relay"), "outbox relay", max_delay=0.01)
    relay.start()
    for _ in range(300):
        if recording_bus.published:
            break
        await asyncio.sleep(0.01)
    await relay.stop()

    assert [e.payload["code"] for e in recording_bus.published] == ["A"]
    assert tries == 4
    assert [r.getMessage() for r in caplog.records if r.name == "hotline.relay"] == [
        "outbox relay failed; retrying with back-off until it works",
        "outbox relay works again",
    ]


class CountingRelay(OutboxRelay):
    """A relay that counts its batches and its idle polls' looks."""

    batches_opened = looks = 0
    looked = asyncio.Event()

    async def _relay_batch(self) -> int:
        self.batches_opened += 1
        return await super()._relay_batch()

    async def _any_unpublished(self) -> bool:
        self.looks += 1
        found = await super()._any_unpublished()
        self.looked.set()
        return found


async def polled(relay: CountingRelay, times: int) -> None:
    start = relay.looks
    while relay.looks < start + times:
        relay.looked.clear()
        await relay.looked.wait()


async def test_an_idle_relay_polls_without_opening_a_batch_and_sends_what_another_process_wrote(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    relay = CountingRelay(intake_db, recording_bus, poll_seconds=0.01)
    relay.looked = asyncio.Event()
    relay.start()
    try:
        async with asyncio.timeout(5):
            await polled(relay, 3)
            assert relay.batches_opened == 1  # the first look at start; the polls only look
            # another instance's commit does not wake this process: the poll finds it
            async with intake_db.engine.begin() as conn:
                await intake_db.write_outbox(conn, [envelope("A")])
            assert not intake_db.events_written.is_set()
            while not recording_bus.published:
                await polled(relay, 1)
    finally:
        await relay.stop()
    assert [e.payload["code"] for e in recording_bus.published] == ["A"]
    assert await pending(intake_db) == 0


async def test_an_idle_relay_looks_less_often_while_it_finds_nothing(
    intake_db: Database, recording_bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each look that finds nothing doubles the wait for the next, up to the maximum; a
    look that finds rows (another process's) has them sent, and the waits start over."""
    waits: list[float] = []
    done = asyncio.Event()

    async def times_out(event: asyncio.Event, timeout: float) -> bool:
        waits.append(timeout)
        if len(waits) == 6:  # another process's commit: no wake-up here, a look finds it
            async with intake_db.engine.begin() as conn:
                await intake_db.write_outbox(conn, [envelope("A")])
        if len(waits) == 9:
            done.set()
            await asyncio.Event().wait()  # the relay is stopped here
        await asyncio.sleep(0)
        return False

    monkeypatch.setattr(relay_module, "wait_set", times_out)
    relay = OutboxRelay(intake_db, recording_bus, poll_seconds=0.1, poll_max_seconds=0.5)
    relay.start()
    try:
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        await relay.stop()
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.1, 0.2, 0.4]
    assert [e.payload["code"] for e in recording_bus.published] == ["A"]


async def test_the_relay_keeps_the_order_events_were_written_in(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    codes = [f"M{i:03d}" for i in range(25)]
    for code in codes:
        async with intake_db.unit_of_work() as uow:
            uow.emit(envelope(code))
    await OutboxRelay(intake_db, recording_bus, batch_size=7).drain()
    assert [e.payload["code"] for e in recording_bus.published] == codes


async def test_the_same_event_delivered_twice_has_one_effect(intake_db: Database) -> None:
    delivered = envelope("A")
    effects: list[str] = []

    async def effect(uow: object) -> None:
        effects.append(delivered.payload["code"])

    assert await intake_db.handle_once("dispatch", delivered, effect) is True
    assert await intake_db.handle_once("dispatch", delivered, effect) is False
    assert effects == ["A"]
    # another consumer group is not affected by the first one's inbox
    assert await intake_db.handle_once("sla", delivered, effect) is True


async def test_a_failed_effect_does_not_mark_the_event_processed(intake_db: Database) -> None:
    delivered = envelope("A")

    async def failing(uow: object) -> None:
        raise RuntimeError("database hiccup")

    with pytest.raises(RuntimeError):
        await intake_db.handle_once("dispatch", delivered, failing)
    done: list[bool] = []

    async def works(uow: object) -> None:
        done.append(True)

    assert await intake_db.handle_once("dispatch", delivered, works) is True
    assert done == [True]


async def claimed(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set((await conn.execute(select(db.inbox.c.event_id))).scalars())


T = at("2026-03-02 09:00")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def made(when: datetime) -> str:
    """An event id (UUID v7) as a producer makes it at ``when``."""
    return str(event_uuid((when - EPOCH) // timedelta(milliseconds=1)))


async def forgets_the_events_made_before_the_cutoff(db: Database) -> None:
    """The inbox prunes by when each event was made, which its id tells, not by when it was
    handled: the old events are claimed last and still go first. Each consumer's, oldest
    first, at most a batch at a time."""
    kept = {
        "dispatch": [made(T), made(T + timedelta(hours=1))],
        "sla": [made(T + timedelta(microseconds=999)), made(T + timedelta(days=1))],
    }
    gone = {
        "dispatch": [made(T - timedelta(days=2)), made(T - timedelta(milliseconds=1))],
        "sla": [made(T - timedelta(days=8))],
    }
    for consumer in ("sla", "dispatch"):
        async with db.engine.begin() as conn:
            assert await db.claim(conn, consumer, kept[consumer]) == set(kept[consumer])
            assert await db.claim(conn, consumer, gone[consumer]) == set(gone[consumer])
    everything = {i for ids in (*kept.values(), *gone.values()) for i in ids}

    assert await db.prune_inbox(T, batch_size=1) == 1
    assert await claimed(db) == everything - {gone["dispatch"][0]}
    assert await db.prune_inbox(T) == 1  # the rest of dispatch's
    assert await db.prune_inbox(T) == 1  # then sla's
    assert await db.prune_inbox(T) == 0
    assert await claimed(db) == {i for ids in kept.values() for i in ids}
    async with db.engine.begin() as conn:  # made within the retention: still a repeat
        assert await db.claim(conn, "sla", kept["sla"]) == set()
        assert await db.claim(conn, "sla", gone["sla"]) == set(gone["sla"])  # forgotten


async def test_the_inbox_forgets_the_events_made_before_the_cutoff(intake_db: Database) -> None:
    await forgets_the_events_made_before_the_cutoff(intake_db)


async def test_the_relay_prunes_the_inbox_past_its_retention_with_the_outbox(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    now = datetime.now(UTC)
    week_old, day_old = made(now - timedelta(days=7, minutes=1)), made(now - timedelta(days=1))
    async with intake_db.engine.begin() as conn:
        await intake_db.claim(conn, "dispatch", [week_old, day_old])
    await OutboxRelay(intake_db, recording_bus).retain()
    assert await claimed(intake_db) == {day_old}  # a week's retention by default

    await OutboxRelay(intake_db, recording_bus, inbox_retention_seconds=3600).retain()
    assert await claimed(intake_db) == set()


async def test_a_busy_relay_paces_its_rounds_and_a_quiet_one_sends_at_once(
    intake_db: Database,
) -> None:
    """A commit that wakes the relay less than ``pace_seconds`` after its last round began
    waits out the rest, and what is committed meanwhile goes in the same round; a commit
    after a quiet spell goes at once (after ``gather_seconds``)."""
    rounds: list[list[str]] = []
    waits: list[float] = []
    clock = [100.0]

    class Rounds:
        async def publish_raw(self, events: Sequence[RawEvent]) -> None:
            rounds.append([Envelope.from_json(e.value).payload["code"] for e in events])

    async def write(code: str) -> None:
        async with intake_db.unit_of_work() as uow:
            uow.emit(envelope(code))

    class Paced(OutboxRelay):
        @staticmethod
        def _now() -> float:
            return clock[0]

        @staticmethod
        async def _gather(seconds: float) -> None:
            waits.append(seconds)
            await write("C")  # committed while the relay waits: it goes with B
            clock[0] += seconds

    relay = Paced(intake_db, Rounds(), poll_seconds=5, pace_seconds=0.25)  # type: ignore[arg-type]
    await write("A")
    relay.start()
    try:
        async with asyncio.timeout(5):
            while len(rounds) < 1:
                await asyncio.sleep(0.01)
            clock[0] += 0.02
            await write("B")
            while len(rounds) < 2:
                await asyncio.sleep(0.01)
            clock[0] += 60  # a quiet spell
            await write("D")
            while len(rounds) < 3:
                await asyncio.sleep(0.01)
    finally:
        await relay.stop()
    assert rounds == [["A"], ["B", "C"], ["D"]]
    assert waits == [pytest.approx(0.23)]
