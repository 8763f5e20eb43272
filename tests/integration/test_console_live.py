"""The console's live board in distributed mode: the gateway's live feed opens its own
Kafka consumer when the first board connects and passes each SLA event on as a
server-sent event (no polling)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from console.live import LiveFeed
from shared.bus import KafkaBus
from shared.events import Envelope
from shared.settings import Settings
from tests.integration.joining import publish_until_handled

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_an_sla_event_on_kafka_reaches_an_open_board(
    infra: dict[str, str], topic_prefix: str
) -> None:
    prefix = topic_prefix
    settings = Settings(bus_url=f"kafka://{infra['kafka']}", topic_prefix=prefix)
    feed = LiveFeed(settings, None)
    producer = KafkaBus(infra["kafka"], prefix=prefix)
    await producer.start()
    async with feed.running():
        stream = feed.stream()
        assert (await anext(stream)).startswith(b"retry:")  # connected: consumer started
        overdue = Envelope(
            type="sla.overdue",
            occurred_at=datetime.now(UTC),
            ticket_id="TJ20261202000042",
            producer="sla",
            payload={"kind": "acceptance", "ticket_id": "TJ20261202000042"},
        )

        async def next_event() -> bytes:
            while True:
                chunk = await anext(stream)
                if chunk.startswith(b"event: sla"):
                    return chunk

        waiting = asyncio.create_task(next_event())
        # the consumer joins its group asynchronously: publish until it has seen one (for
        # as long as a first join may take on a loaded machine, not a count of tries)
        await publish_until_handled(producer, lambda _: overdue, waiting.done)
        chunk = waiting.result()
        assert b'"type":"sla.overdue"' in chunk
        assert b'"ticket_id":"TJ20261202000042"' in chunk
        await stream.aclose()
    await producer.stop()
    assert feed.listeners == 0
