"""CPU a consumer's own bookkeeping spends an event (shared/consumer.py ``handle_batch``:
which events it handles, the claim's ids and keys, the parked check, the runs, the trace
ids), without the database and with handlers that do nothing: batches of 128 of the bench's
registrations (bench/consumers.py's) as the bus reads them for dispatch's group, claimed as
all new, none parked, handed to a set-based handler.

    python bench/consumer_batch.py [batches per round] [rounds]

Prints JSON: microseconds of CPU an event (the best round and the median). Compare two trees
with BENCH_ROOT, alternating (A B B A), minutes apart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# BENCH_ROOT: the tree whose consumer runs (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.consumers import registrations  # noqa: E402
from shared.consumer import Consumer  # noqa: E402
from shared.events import TicketRegistered, read  # noqa: E402

BATCH = 128


class _Db:
    """What ``Consumer`` asks of its database, answering at once: every event new, none
    parked."""

    def __init__(self) -> None:
        self.events_written = asyncio.Event()

    @contextlib.asynccontextmanager
    async def kept_transaction(self) -> AsyncIterator[Any]:
        yield SimpleNamespace(invalidated=False)

    async def claim_unparked(
        self, conn: Any, consumer: str, ids: Sequence[str], keys: Sequence[str], **_: Any
    ) -> tuple[set[str], dict[str, int]]:
        return set(ids), {}

    async def write_outbox(self, conn: Any, events: Sequence[Any]) -> None:
        pass


async def _nothing(ctx: Any, uow: Any, batch: Any) -> None:
    pass


async def run(batches: int, rounds: int) -> dict[str, Any]:
    ctx = SimpleNamespace(name="bench", db=_Db())
    kind = TicketRegistered.TYPE
    consumer = Consumer(ctx, {kind: _nothing}, many={kind: _nothing})  # type: ignore[arg-type]
    events = [read(e.to_json(), TicketRegistered) for e in registrations(batches * BATCH, 0)]
    work = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    times = []
    for _ in range(rounds + 1):  # the first round warms up
        start = time.process_time()
        for batch in work:
            await consumer.handle_batch(batch)  # type: ignore[arg-type]
        times.append((time.process_time() - start) / len(events) * 1e6)
    return {
        "events": len(events),
        "handle_batch": {
            "best_us": round(min(times[1:]), 3),
            "median_us": round(statistics.median(times[1:]), 3),
        },
    }


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(asyncio.run(run(batches, rounds)), indent=1))


if __name__ == "__main__":
    main()
