"""A consumer waits out a Kafka outage quietly, whatever its metadata said last, and
consumes again when the broker is back (on the fault test's private Kafka, which it stops).

The fault test's CI runs twice saw a service restarted shortly before the outage use a
whole core (66 % and 98 %) while Kafka was down: its last metadata named no leader for
its partitions (a refresh while the broker was shutting down), and aiokafka refreshes
metadata with no pause when a partition has no leader. That state comes from a race; here
it is set directly, right after the broker stops, so the test does not depend on timing."""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from collections.abc import Sequence

import pytest

from shared.bus import KafkaBus
from shared.events import TOPIC_TICKETS, Envelope
from tests.fault.conftest import Infra
from tests.integration.joining import JOIN_TIMEOUT
from tests.integration.test_bus_batching import registered

pytestmark = pytest.mark.asyncio(loop_scope="function")


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def publish_until_handled(bus: KafkaBus, seen: set[str], first: int) -> None:
    """Publish one event at a time until the group has handled one (it joins, or comes
    back, asynchronously), for as long as a join may take on a loaded machine."""
    before, n = len(seen), first
    deadline = time.monotonic() + JOIN_TIMEOUT
    while len(seen) == before:
        assert time.monotonic() < deadline, f"the consumer handled nothing in {JOIN_TIMEOUT} s"
        try:
            await bus.publish([registered(n)])
        except Exception:  # noqa: BLE001 - the broker may still be coming back
            pass
        n += 1
        await asyncio.sleep(0.5)


async def test_a_consumer_whose_partitions_have_no_leader_waits_out_an_outage_idle(
    private_infra: Infra,
) -> None:
    bus = KafkaBus(private_infra.urls["KAFKA_BOOTSTRAP"], prefix=f"o{uuid.uuid4().hex[:8]}.")
    seen: set[str] = set()

    async def handler(batch: Sequence[Envelope]) -> None:
        seen.update(str(e.event_id) for e in batch)

    bus.subscribe("dispatch", [TOPIC_TICKETS], handler)
    await bus.start()
    try:
        await publish_until_handled(bus, seen, 0)
        consumer = bus._subs["dispatch"].consumer
        assert consumer is not None and consumer.assignment()
        await asyncio.to_thread(private_infra.stop, "kafka.sh")
        try:
            # what a metadata refresh during the broker's shutdown leaves behind
            cluster = consumer._client.cluster
            for tp in consumer.assignment():
                partitions = cluster._partitions[tp.topic]
                partitions[tp.partition] = partitions[tp.partition]._replace(leader=-1)
            consumer._client.force_metadata_update()
            started, wall = cpu_seconds(), time.monotonic()
            # the window the idle CPU is measured over (the broker is down in it), not a
            # wait for a result: there is no clock to move for a broker outage
            await asyncio.sleep(5)
            share = (cpu_seconds() - started) / (time.monotonic() - wall)
        finally:
            await asyncio.to_thread(private_infra.start, "kafka.sh")
        assert share < 0.25, f"{share:.0%} of a core while Kafka is down"
        await publish_until_handled(bus, seen, 1000)
    finally:
        await bus.stop()
