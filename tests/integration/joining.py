"""Waiting for a Kafka consumer group to join before a test measures anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shared.bus import KafkaBus
from shared.events import Envelope

# A group's first join on a fresh broker waits for its coordinator (the offsets topic
# being created) and the topic's own creation; on a loaded CI machine that has taken
# over 30 s. A time limit, not a count of tries, says how long is too long.
JOIN_TIMEOUT = 120.0


async def publish_until_handled(
    bus: KafkaBus,
    make: Callable[[int], Envelope],
    handled: Callable[[], bool],
    timeout: float = JOIN_TIMEOUT,
) -> None:
    """Publish ``make(0)``, ``make(1)``, ... every half second until ``handled()`` is true:
    the group has joined and its consumer takes events."""
    deadline = time.monotonic() + timeout
    n = 0
    while not handled():
        assert time.monotonic() < deadline, f"the consumer never joined in {timeout:.0f} s"
        await bus.publish([make(n)])
        n += 1
        await asyncio.sleep(0.5)
