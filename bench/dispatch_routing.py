"""CPU dispatch's set-based registration handler (``many.on_registered``) spends a
registration without the database: runs of 128 of the bench's registrations (bench/e2e.py's
tickets, each matter routed to the catalog's unit), the routing read's rows made as the
read returns them (``fetch_rows`` answered in memory), every work order opened, each
``ticket.dispatched`` emitted.

    python bench/dispatch_routing.py [runs per round] [rounds]

Prints JSON: microseconds of CPU a registration (best round and median). Compare two trees
with BENCH_ROOT, alternating (A B B A), minutes apart."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.consumers import T0, registrations  # noqa: E402
from bench.e2e import CATALOG  # noqa: E402
from services.dispatch.handlers import many  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.db import UnitOfWork  # noqa: E402
from shared.events import TicketRegistered, read  # noqa: E402

RUN = 128
_COLUMNS = [
    "ticket_id",
    *(f"m_{c}" for c in many._MATTER),
    *(f"u_{c}" for c in many._UNIT),
    "flag",
    "early_deadline",
]
RoutingRow = namedtuple("RoutingRow", _COLUMNS)  # type: ignore[misc]  # a read's row


def routing_rows(events: list[Any]) -> list[Any]:
    """The routing read's rows of ``events``: each matter and its district's unit from the
    catalog (a unit's row made from its id: what matters here is which rows are alike)."""
    matters = {m["code"]: m for m in CATALOG["matters"]}
    rows = []
    for e in events:
        matter = matters[e.payload.matter_code]
        scope, _, role = matter["responsible"].partition(":")
        # a city unit, or the district's own unit of that role
        unit_id = role if scope == "city" else f"{e.payload.district}-{role}"
        rows.append(
            RoutingRow(
                e.payload.ticket_id,
                matter["code"],
                matter["name"],
                matter.get("default_urgency", "general"),
                False,
                matter.get("statutory_period"),
                False,
                True,
                unit_id,
                unit_id,
                "city",
                False,
                None,
                None,
                None,
                True,
                None,
                None,
            )
        )
    return rows


async def run(runs: int, rounds: int) -> dict[str, Any]:
    work = []
    for r in range(runs):
        events = [read(e.to_json(), TicketRegistered) for e in registrations(RUN, r * RUN)]
        work.append((events, routing_rows(events)))
    current: list[Any] = []

    async def fetch_rows(conn: Any, stmt: Any, params: Any) -> list[Any]:
        return current

    async def insert_new(conn: Any, table: Any, rows: list[dict[str, Any]], *_: Any, **__: Any):
        return [SimpleNamespace(ticket_id=r["ticket_id"]) for r in rows]

    async def fallback_acceptance_deadline(ctx: Any, urgency: str, now: Any) -> Any:
        return now

    many.fetch_rows = fetch_rows  # type: ignore[assignment]
    many.insert_new = insert_new  # type: ignore[assignment]
    many.fallback_acceptance_deadline = fallback_acceptance_deadline  # type: ignore[assignment]
    ctx = SimpleNamespace(clock=ManualClock(T0))
    conn = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"))
    times = []
    for _ in range(rounds + 1):  # the first round warms up
        spent = 0.0
        for events, rows in work:
            current[:] = rows
            uow = UnitOfWork(conn, new_facts=True)  # type: ignore[arg-type]
            start = time.process_time()
            await many.on_registered(ctx, uow, events)  # type: ignore[arg-type]
            spent += time.process_time() - start
            assert len(uow.events) == len(events)
        times.append(spent / (runs * RUN) * 1e6)
    return {
        "registrations": runs * RUN,
        "on_registered": {
            "best_us": round(min(times[1:]), 3),
            "median_us": round(statistics.median(times[1:]), 3),
        },
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(asyncio.run(run(runs, rounds)), indent=1))


if __name__ == "__main__":
    main()
