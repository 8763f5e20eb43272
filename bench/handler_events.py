"""CPU the hot consumers' handlers spend making the events they announce, per event, on the
bench's tickets (bench/consumers.py's registrations, 128 a run, each under its own trace id),
without the database:

- ``dispatched``: dispatch's ``ticket.dispatched`` of each work order a run of registrations
  opened, under the ticket's trace id, as ``many.on_registered`` emits them (a tree with
  ``tickets.dispatched_run``: the payloads written by dispatch; with ``Event.outgoing_run``:
  the run's together; else ``dispatched_event`` one by one);
- ``dispatched_one``: the same events one by one (``dispatched_event``, as a registration
  routed elsewhere, or a redispatch, gets its own);
- ``dispatch_clocks``: SLA's dispatch clock of each registration of a run (``dispatch_clock``
  with the run's timings, as ``many.on_registered`` makes them: each its own start);
- ``clocks_started``: SLA's announcement of each dispatch clock a run of registrations
  started (``clocks_started`` given the rows and the insert's returned keys, as
  ``many.on_registered`` calls it).

    python bench/handler_events.py [runs per round] [rounds]

Prints JSON: microseconds of CPU an event (the best round and the median). Compare two trees
with BENCH_ROOT, alternating (A B B A), minutes apart.

The heap is frozen after the set-up, as a service freezes its own once started
(``freeze_startup_heap``, which also sets its young collections' threshold): otherwise a full
collection over the set-up's runs (~0.1 s) fell in every other round, in whichever case
crossed the collector's threshold then, and moved a case's median 4x by where it fell."""

from __future__ import annotations

import inspect
import json
import os
import statistics
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# BENCH_ROOT: the tree whose handlers run (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.consumers import T0, registrations  # noqa: E402
from services.dispatch.domain.catalog import Route  # noqa: E402
from services.dispatch.handlers import tickets  # noqa: E402
from services.dispatch.handlers.common import PRODUCER  # noqa: E402
from services.dispatch.handlers.tickets import assignment_row, dispatched_event  # noqa: E402
from services.sla.handlers import clocks  # noqa: E402
from services.sla.handlers.state import SlaState  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.db import UnitOfWork  # noqa: E402
from shared.events import TicketDispatched, TicketRegistered, parse_payload  # noqa: E402
from shared.http_server import freeze_startup_heap  # noqa: E402

RUN = 128
# a row of the clocks' insert's RETURNING as shared/db.py's ``fetch_rows`` gives it
_KEY = namedtuple("_KEY", ["ticket_id", "kind", "round", "dispatch_no"])  # type: ignore[name-match]
Key = type("Row", (_KEY,), {"__slots__": (), "_mapping": property(_KEY._asdict)})


def dispatched(runs: list[list[tuple[dict[str, Any], str]]]) -> float:
    """``ticket.dispatched`` of each run's rows, under their tickets' trace ids, as the tree's
    ``many.on_registered`` makes them."""
    if not hasattr(TicketDispatched, "outgoing_run"):
        return dispatched_one(runs)
    uow = UnitOfWork(None)  # type: ignore[arg-type]  # emits only
    if hasattr(tickets, "dispatched_run"):  # the payloads written by dispatch itself
        made = tickets.dispatched_run
        start = time.process_time()
        for run in runs:
            uow.emit(*made([row for row, _ in run], occurred_at=T0, trace_ids=[t for _, t in run]))
        return time.process_time() - start
    fields = tickets.dispatched_fields  # type: ignore[attr-defined]
    start = time.process_time()
    for run in runs:
        uow.emit(
            *TicketDispatched.outgoing_run(  # type: ignore[attr-defined]
                [fields(row) for row, _ in run],
                producer=PRODUCER,
                occurred_at=T0,
                trace_ids=[trace for _, trace in run],
            )
        )
    return time.process_time() - start


def dispatched_one(runs: list[list[tuple[dict[str, Any], str]]]) -> float:
    """``ticket.dispatched`` of each row, under its ticket's trace id, one by one."""
    uow = UnitOfWork(None)  # type: ignore[arg-type]  # emits only
    if "trace_id" in inspect.signature(dispatched_event).parameters:

        def made(row: dict[str, Any], trace: str) -> Any:
            return dispatched_event(row, trace_id=trace)  # type: ignore[call-arg]

    else:
        from shared.logging import in_trace  # type: ignore[attr-defined]

        def made(row: dict[str, Any], trace: str) -> Any:
            return in_trace(trace, dispatched_event, row)

    start = time.process_time()
    for run in runs:
        uow.emit(*(made(row, trace) for row, trace in run))
    return time.process_time() - start


def started(ctx: Any, runs: list[tuple[list[dict[str, Any]], list[Any], list[str]]]) -> float:
    """Each run's announcements in a unit of work of its own, as a batch's (one gathering
    every run's announcements grew the heap by a run's events each time: the new pages'
    first touches, ~1.2 us a clock, as much as the writing measured)."""
    start = time.process_time()
    for rows, inserted, traces in runs:
        clocks.clocks_started(ctx, UnitOfWork(None), rows, inserted, traces)  # type: ignore[arg-type]
    return time.process_time() - start


def made_clocks(ctx: Any, runs: list[list[Any]]) -> float:
    start = time.process_time()
    for events in runs:
        timings: Any = {}
        for event in events:
            clocks.dispatch_clock(ctx, event, timings)
    return time.process_time() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    ctx = SimpleNamespace(clock=ManualClock(T0), extras={"sla": SlaState()})
    route = Route(unit_id="city-water", needs_determination=False, reason="catalog")
    dispatch_runs, sla_runs, registered_runs = [], [], []
    for r in range(runs):
        envelopes = registrations(RUN, r * RUN)
        events = [parse_payload(e) for e in envelopes]
        assert all(isinstance(e, TicketRegistered) for e in events)
        traces = [str(e.trace_id) for e in envelopes]
        registered_runs.append(events)
        rows = [
            assignment_row(
                e,  # type: ignore[arg-type]
                route,
                None,
                flagged=False,
                now=T0,
                acceptance_deadline=T0,
                dispatch_deadline=None,
            )
            for e in events
        ]
        dispatch_runs.append(list(zip(rows, traces, strict=True)))
        timings: Any = {}
        clock_rows = [clocks.dispatch_clock(ctx, e, timings) for e in events]  # type: ignore[arg-type]
        inserted = [Key(c["ticket_id"], str(c["kind"]), 1, 1) for c in clock_rows]
        sla_runs.append((clock_rows, inserted, traces))
    events = runs * RUN
    freeze_startup_heap()  # the set-up's runs out of the collector's reach, as a service's start
    times: dict[str, list[float]] = {
        "dispatched": [],
        "dispatched_one": [],
        "dispatch_clocks": [],
        "clocks_started": [],
    }
    for _ in range(rounds + 1):  # the first round warms up
        times["dispatched"].append(dispatched(dispatch_runs) / events * 1e6)
        times["dispatched_one"].append(dispatched_one(dispatch_runs) / events * 1e6)
        times["dispatch_clocks"].append(made_clocks(ctx, registered_runs) / events * 1e6)
        times["clocks_started"].append(started(ctx, sla_runs) / events * 1e6)
    result = {
        name: {"best_us": round(min(t[1:]), 3), "median_us": round(statistics.median(t[1:]), 3)}
        for name, t in times.items()
    }
    print(json.dumps({"events": events, **result}, indent=1))


if __name__ == "__main__":
    main()
