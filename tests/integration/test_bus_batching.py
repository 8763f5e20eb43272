"""Kafka consumers take events in batches under load (a fetch waits a few milliseconds at
the broker for more), go back to long polls when idle, and commit what they handled at
most every ``commit_seconds``: without another event, and at stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.bus import KafkaBus
from shared.events import TOPIC_TICKETS, Envelope
from tests.integration.joining import publish_until_handled

pytestmark = pytest.mark.asyncio(loop_scope="function")


def registered(n: int) -> Envelope:
    return Envelope(
        type="ticket.registered",
        occurred_at=datetime.now(UTC),
        ticket_id=f"TJ20261202{n:06d}",
        producer="intake",
        payload={"content": "小区路灯不亮，请尽快处理"},
    )


async def committed(kafka: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


async def test_a_steady_load_is_taken_in_batches_and_committed_without_waiting_for_more(
    infra: dict[str, str],
    topic_prefix: str,
) -> None:
    prefix = topic_prefix
    bus = KafkaBus(infra["kafka"], prefix=prefix, fetch_wait_ms=20, commit_seconds=1.0)
    batches: list[int] = []
    seen: set[str] = set()

    async def handler(batch: Sequence[Envelope]) -> None:
        batches.append(len(batch))
        seen.update(str(e.event_id) for e in batch)

    bus.subscribe("dispatch", [TOPIC_TICKETS], handler)
    await bus.start()
    try:
        # the group joins asynchronously: publish until the first event is handled
        await publish_until_handled(bus, registered, lambda: bool(seen))
        warm = len(seen)
        batches.clear()
        # a steady load: four producers, each sending one event at a time
        sent, started = 200, time.monotonic()

        async def trickle(first: int) -> None:
            for n in range(first, first + sent // 4):
                await bus.publish([registered(n)])
                await asyncio.sleep(0.002)

        await asyncio.gather(*(trickle(1000 + k * 100) for k in range(4)))
        deadline = time.monotonic() + 30
        while len(seen) < warm + sent and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        seconds = time.monotonic() - started
        assert len(seen) >= warm + sent
        # a fetch waits up to 20 ms for more: at most ~50 batches a second whatever the
        # rate (one fetch and one transaction for a few events), not one batch an event
        assert len(batches) < sent / 2, batches
        assert len(batches) <= seconds * 1000 / 20 * 1.25 + 2, (len(batches), seconds)

        # what was handled is committed within commit_seconds, with no event after it
        group = f"{prefix}dispatch"
        deadline = time.monotonic() + 10
        while await committed(infra["kafka"], group) < len(seen):
            assert time.monotonic() < deadline, "handled events never committed"
            await asyncio.sleep(0.2)
        assert await committed(infra["kafka"], group) == len(seen)
    finally:
        await bus.stop()


async def test_what_was_handled_is_committed_when_the_consumer_stops(
    infra: dict[str, str],
    topic_prefix: str,
) -> None:
    prefix = topic_prefix
    # a commit interval far beyond the test: only the stop can commit
    bus = KafkaBus(infra["kafka"], prefix=prefix, commit_seconds=3600)
    seen: list[Envelope] = []

    async def handler(batch: Sequence[Envelope]) -> None:
        seen.extend(batch)

    bus.subscribe("sla", [TOPIC_TICKETS], handler)
    await bus.start()
    try:
        await publish_until_handled(bus, registered, lambda: bool(seen))
        await bus.publish([registered(100 + n) for n in range(5)])
        deadline = time.monotonic() + 10
        while len(seen) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await committed(infra["kafka"], f"{prefix}sla") == 0
    finally:
        await bus.stop()
    assert await committed(infra["kafka"], f"{prefix}sla") == len(seen)
