"""CPU a consumer's own bookkeeping spends an event (shared/consumer.py ``handle_batch``:
which events it handles, the claim's ids and keys, the parked check, the runs, the trace
ids), without the database and with handlers that do nothing: batches of 128 of the bench's
registrations (bench/consumers.py's) as the bus reads them for dispatch's group, claimed as
all new, none parked, handed to a set-based handler; and again with a handler that emits an
event for each (made beforehand) under its ticket's trace id, as dispatch's does.

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
from shared import consumer as consumer_module  # noqa: E402
from shared.consumer import Consumer  # noqa: E402
from shared.events import TicketDispatched, TicketRegistered, read  # noqa: E402

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


def _emitting(events: Sequence[Any]) -> Any:
    """A set-based handler that emits, for each registration of its run, an event about its
    ticket under the ticket's own trace id (made beforehand: only the consumer's own work
    on what a run emitted is measured), as dispatch's ``on_registered`` does; marked as
    doing so where the tree can tell its consumer (``shared.consumer.traced``)."""
    made = {
        e.event_id: TicketDispatched(
            ticket_id=e.ticket_id,
            unit_id="city-water",
            matter_code="WATER-001",
            district="120101",
            type="help",
            urgency="general",
            dispatched_at=e.occurred_at,
        ).outgoing(producer="dispatch", occurred_at=e.occurred_at, trace_id=e.trace_id)
        for e in events
    }

    async def emitting(ctx: Any, uow: Any, run: Any) -> None:
        uow.emit(*[made[e.event_id] for e in run])

    mark = getattr(consumer_module, "traced", None)
    return emitting if mark is None else mark(emitting)


async def _timed(consumer: Consumer, work: list[Any], rounds: int) -> dict[str, float]:
    times = []
    events = sum(len(batch) for batch in work)
    for _ in range(rounds + 1):  # the first round warms up
        start = time.process_time()
        for batch in work:
            await consumer.handle_batch(batch)
        times.append((time.process_time() - start) / events * 1e6)
    return {
        "best_us": round(min(times[1:]), 3),
        "median_us": round(statistics.median(times[1:]), 3),
    }


async def run(batches: int, rounds: int) -> dict[str, Any]:
    ctx = SimpleNamespace(name="bench", db=_Db())
    kind = TicketRegistered.TYPE
    events = [read(e.to_json(), TicketRegistered) for e in registrations(batches * BATCH, 0)]
    work = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    consumer = Consumer(ctx, {kind: _nothing}, many={kind: _nothing})  # type: ignore[arg-type]
    emitting = _emitting(events)
    emits = Consumer(ctx, {kind: _nothing}, many={kind: emitting})  # type: ignore[arg-type]
    return {
        "events": len(events),
        "handle_batch": await _timed(consumer, work, rounds),
        # the same, the handler emitting an event for each registration (under its trace id)
        "handle_batch_emitting": await _timed(emits, work, rounds),
    }


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(asyncio.run(run(batches, rounds)), indent=1))


if __name__ == "__main__":
    main()
