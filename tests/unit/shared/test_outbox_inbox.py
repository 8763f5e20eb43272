"""The transactional outbox, its relay, and the idempotent inbox."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from shared.db import Database
from shared.events import Envelope, MatterPublished
from shared.logging import Outage
from shared.relay import OutboxRelay
from tests.conftest import RecordingBus


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


async def test_the_inbox_forgets_handled_events_recorded_before_the_cutoff(
    intake_db: Database,
) -> None:
    async with intake_db.engine.begin() as conn:
        assert await intake_db.claim(conn, "dispatch", ["old-1", "old-2"]) == {"old-1", "old-2"}
    cutoff = datetime.now(UTC)
    async with intake_db.engine.begin() as conn:
        await intake_db.claim(conn, "sla", ["new-1"])

    assert await intake_db.prune_inbox(cutoff, batch_size=1) == 1  # oldest first, bounded
    assert await intake_db.prune_inbox(cutoff) == 1
    assert await intake_db.prune_inbox(cutoff) == 0
    assert await claimed(intake_db) == {"new-1"}
    async with intake_db.engine.begin() as conn:  # within the retention: still a repeat
        assert await intake_db.claim(conn, "sla", ["new-1"]) == set()


async def test_the_relay_prunes_the_inbox_past_its_retention_with_the_outbox(
    intake_db: Database, recording_bus: RecordingBus
) -> None:
    async with intake_db.engine.begin() as conn:
        await intake_db.claim(conn, "dispatch", ["e1", "e2"])
    await OutboxRelay(intake_db, recording_bus).retain()
    assert await claimed(intake_db) == {"e1", "e2"}  # a week's retention by default

    await OutboxRelay(intake_db, recording_bus, inbox_retention_seconds=0).retain()
    assert await claimed(intake_db) == set()
