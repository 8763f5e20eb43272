"""CPU per event of emitting an event, from the handler's model to what the outbox writes of
it (its id's text, topic, key and JSON bytes), on the events a ticket's services emit most
(its registration with the bench's Chinese text, its dispatch, a clock's deadline), each
under a trace id, a batch's events sharing their time as a consumer's do:

- ``envelope``: ``Event.envelope`` then ``str(event_id)``, ``topic``, ``key``, ``to_json()``;
- ``outgoing`` (a tree that has it): ``Event.outgoing`` then ``id_text``, ``topic``, ``key``,
  ``to_json()``.

    python bench/emit.py [events per round] [rounds]

The two ways alternate round by round in one process. Prints JSON: microseconds of CPU an
event (the best round and the median) for each."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

# BENCH_ROOT: the tree whose events are emitted (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.consumers import T0, registrations  # noqa: E402
from shared.events import (  # noqa: E402
    DeadlineSet,
    Event,
    TicketDispatched,
    TicketRegistered,
    parse_payload,
)
from shared.logging import trace_id_var  # noqa: E402

BATCH = 128  # events sharing their time (a consumer's batch)


def models(n: int) -> list[tuple[Event, dict[str, Any]]]:
    """``n`` events, a third of each kind, with what their envelopes are given: the bench's
    registrations (bench/consumers.py's), their dispatches and deadlines a batch's time."""
    out: list[tuple[Event, dict[str, Any]]] = []
    for i, registration in enumerate(registrations(n // 3 + 1, 0)):
        at = T0 + timedelta(milliseconds=i // BATCH)
        registered = parse_payload(registration)
        assert isinstance(registered, TicketRegistered)
        number = registered.ticket_id
        how = {"producer": "intake", "occurred_at": registration.occurred_at}
        out.append((registered, how | {"ticket_id": number}))
        out.append(
            (
                TicketDispatched(
                    ticket_id=number,
                    unit_id="city-water",
                    matter_code=registered.matter_code,
                    district=registered.district,
                    type=registered.type,
                    urgency="general",
                    dispatched_at=at,
                    statutory_period="15wd",
                ),
                {"producer": "dispatch", "occurred_at": at},
            )
        )
        out.append(
            (
                DeadlineSet(
                    ticket_id=number,
                    clock="acceptance",
                    unit_id="city-water",
                    started_at=at,
                    deadline=at + timedelta(minutes=30),
                    period="30m",
                ),
                {"producer": "sla", "occurred_at": at},
            )
        )
    return out[:n]


def by_envelope(event: Event, how: dict[str, Any]) -> tuple[str, str, str, bytes]:
    e = event.envelope(**how)
    return str(e.event_id), e.topic, e.key, e.to_json()


def by_outgoing(event: Event, how: dict[str, Any]) -> tuple[str, str, str, bytes]:
    e = event.outgoing(**how)  # type: ignore[attr-defined]
    return e.id_text, e.topic, e.key, e.to_json()  # type: ignore[no-any-return]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    events = models(n)
    ways: dict[str, Callable[[Event, dict[str, Any]], tuple[str, str, str, bytes]]] = {
        "envelope": by_envelope
    }
    if hasattr(Event, "outgoing"):
        ways["outgoing"] = by_outgoing
    times: dict[str, list[float]] = {name: [] for name in ways}
    token = trace_id_var.set("0123456789abcdef0123456789abcdef")
    for _ in range(rounds + 1):  # the first round warms up
        for name, way in ways.items():
            start = time.process_time()
            for event, how in events:
                way(event, how)
            times[name].append((time.process_time() - start) / len(events) * 1e6)
    trace_id_var.reset(token)
    result = {
        name: {
            "best_us": round(min(t[1:]), 3),
            "median_us": round(statistics.median(t[1:]), 3),
        }
        for name, t in times.items()
    }
    print(json.dumps({"events": n, **result}, indent=1))


if __name__ == "__main__":
    main()
