"""A Kafka consumer group passes over the events of the types it does not handle (most of a
topic's traffic, for most groups): they never reach its handler, never hold up the events
behind them, and its committed position and lag move past them, a batch of nothing but
them included. Its records are taken as aiokafka's parser made them (``lean_records``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from shared.bus import KafkaBus
from shared.events import TOPIC_TICKETS, Envelope, Header
from tests.integration.conftest import eventually
from tests.integration.joining import publish_until_handled
from tests.integration.test_bus_batching import committed
from tests.integration.test_bus_lag import lag_reaches

pytestmark = pytest.mark.asyncio(loop_scope="function")

HANDLED = "ticket.completed"


def ticket_event(kind: str, n: int) -> Envelope:
    return Envelope(
        type=kind,
        occurred_at=datetime.now(UTC),
        ticket_id=f"TJ20261205{n:06d}",
        producer="intake",
        payload={"note": "已办结，群众满意"},
    )


async def published(bus: KafkaBus, group: str) -> int:
    """Records on the group's partitions (their end offsets; the topic is the test's own
    and the group's one member holds every partition)."""
    consumer = bus._subs[group].consumer
    assert consumer is not None
    return sum((await consumer.end_offsets(sorted(consumer.assignment()))).values())


async def test_a_group_passes_over_the_types_it_does_not_handle_and_commits_past_them(
    infra: dict[str, str], topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka, group = infra["kafka"], f"{topic_prefix}knowledge"
    bus = KafkaBus(kafka, prefix=topic_prefix, commit_seconds=0.2)
    records: list[type] = []  # what the group's records came as
    decode = KafkaBus._decode

    def watched(self: KafkaBus, batches: dict[Any, list[Any]], *args: Any) -> Any:
        records.extend(type(m) for messages in batches.values() for m in messages)
        return decode(self, batches, *args)

    monkeypatch.setattr(KafkaBus, "_decode", watched)
    seen: list[Header] = []

    async def handler(batch: Sequence[Header]) -> None:
        seen.extend(batch)

    bus.subscribe("knowledge", [TOPIC_TICKETS], handler, {HANDLED})
    await bus.start()
    try:
        await publish_until_handled(bus, lambda n: ticket_event(HANDLED, n), lambda: bool(seen))
        seen.clear()
        # each ticket's registration and dispatch (passed over) before its completion
        await bus.publish(
            [
                ticket_event(kind, n)
                for n in range(100, 130)
                for kind in ("ticket.registered", "ticket.dispatched", HANDLED)
            ]
        )

        async def completions() -> bool:
            return len(seen) >= 30

        await eventually(completions, "the completions behind the passed-over events")
        assert sorted((e.type, e.ticket_id) for e in seen) == [
            (HANDLED, f"TJ20261205{n:06d}") for n in range(100, 130)
        ]
        total = await published(bus, "knowledge")

        async def all_committed() -> bool:
            return await committed(kafka, group) == total

        await eventually(all_committed, "the group's position past the passed-over events", 15)

        # fetched alone, a batch of nothing but passed-over events: none handled, and the
        # position and the lag move past them all the same
        await bus.publish([ticket_event("ticket.registered", n) for n in range(200, 240)])
        total = await published(bus, "knowledge")
        await eventually(all_committed, "the position past a batch of passed-over events", 15)
        assert await lag_reaches(bus, "knowledge", lambda lag: lag == 0, "passed over", 10) == 0
        assert len(seen) == 30
        assert records and not any(issubclass(kind, ConsumerRecord) for kind in records)
    finally:
        await bus.stop()
