"""CPU per event of ``KafkaBus.publish_raw`` as the outbox relay calls it (issue 12): the
outbox's rows as stored (the bench's registrations, Chinese text, each with its trace id in
its bytes only), in rounds of ``batch`` events, each event's partition chosen, its trace id
read for the headers and its record appended to aiokafka's own record batch. The producer
sends nothing: its batches are built as aiokafka builds them and their acknowledgements
come at once, so only this process's part of a relay round is counted (not the broker's,
not the produce request's I/O). The partition cache is emptied before each round: in a
relay most keys are new (``partition_for`` remembers those seen lately).

    python bench/publish_raw.py [events] [batch] [rounds]

BENCH_ROOT: the tree whose bus runs (this one's by default): compare two trees by running
this file under each tree's python with BENCH_ROOT set, alternating (A B B A). Prints JSON:
microseconds of CPU an event (the best round and the median)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.consumers import registrations  # noqa: E402
from shared.bus import KafkaBus, RawEvent, partition_for  # noqa: E402


class Unsent:
    """aiokafka's producer as ``publish_raw`` uses it, sending nothing."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_batch(self) -> Any:
        return self.real.create_batch()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    async def send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        sent = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent


async def measure(events: int, batch: int, rounds: int) -> dict[str, Any]:
    real = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True, acks="all")
    bus = KafkaBus("127.0.0.1:1", prefix="bench.")
    bus._producer = Unsent(real)
    stored = [RawEvent(e.topic, e.key, e.to_json()) for e in registrations(events, 0)]
    assert all(b'"trace_id":"' in r.value for r in stored)
    gc.collect()
    gc.freeze()
    spent = []
    for _ in range(rounds):
        partition_for.cache_clear()
        began = time.process_time()
        for first in range(0, events, batch):
            await bus.publish_raw(stored[first : first + batch])
        spent.append((time.process_time() - began) / events * 1e6)
    return {
        "events": events,
        "batch": batch,
        "us_an_event_best": round(min(spent), 3),
        "us_an_event_median": round(statistics.median(spent), 3),
    }


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    print(json.dumps(asyncio.run(measure(events, batch, rounds))))


if __name__ == "__main__":
    main()
