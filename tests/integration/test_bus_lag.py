"""A Kafka consumer group's lag (``hotline_consumer_lag_events``) is read from the broker
when scraped: while the consumer retries a batch through a database outage, the events
piling up behind it show, and once it recovers the lag is 0 again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from shared.bus import KafkaBus
from shared.events import TOPIC_TICKETS, Envelope
from tests.integration.joining import publish_until_handled
from tests.integration.test_bus_batching import registered

pytestmark = pytest.mark.asyncio(loop_scope="function")


class DatabaseDown(Exception):
    """Stands in for asyncpg's connection errors (OperationalError)."""


async def scraped_lag(bus: KafkaBus, group: str) -> int:
    """What ``/metrics`` reports for ``group`` (shared/metrics.py: refresh, then read)."""
    refresh = getattr(bus, "refresh_lag", None)
    if callable(refresh):
        await refresh()
    return bus.lag()[group]


async def lag_reaches(bus: KafkaBus, group: str, ok: object, what: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        lag = await scraped_lag(bus, group)
        if ok(lag):  # type: ignore[operator]
            return lag
        assert time.monotonic() < deadline, f"{what}: the lag stayed at {lag}"
        await asyncio.sleep(0.2)


async def test_the_lag_shows_events_piling_up_behind_a_consumer_stuck_in_an_outage(
    infra: dict[str, str],
    topic_prefix: str,
) -> None:
    prefix = topic_prefix
    bus = KafkaBus(infra["kafka"], prefix=prefix, commit_seconds=0.2)
    seen: set[str] = set()
    down = False
    tries = 0

    async def handler(batch: Sequence[Envelope]) -> None:
        nonlocal tries
        if down:
            tries += 1
            raise DatabaseDown("connection refused")
        seen.update(str(e.event_id) for e in batch)

    bus.subscribe("sla", [TOPIC_TICKETS], handler)
    await bus.start()
    try:
        await publish_until_handled(bus, registered, lambda: bool(seen))
        await lag_reaches(bus, "sla", lambda lag: lag == 0, "the warm-up handled", 10)

        down = True
        await bus.publish([registered(500)])
        while tries == 0:  # the consumer holds a batch it cannot hand over
            await asyncio.sleep(0.05)
        piled = 25
        await bus.publish([registered(600 + n) for n in range(piled)])
        assert await lag_reaches(bus, "sla", lambda lag: lag >= piled, "while down", 10) >= piled
        assert bus.consumer_states()["sla"] == "retrying"

        down = False  # the database is back: the retry takes the batch, then the rest
        await lag_reaches(bus, "sla", lambda lag: lag == 0, "after recovery", 30)
        assert len(seen) >= piled + 1
    finally:
        await bus.stop()
