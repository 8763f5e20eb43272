"""SLA's announcements of new clocks (``clocks_started``), made without a database."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

from services.sla.domain import ClockKind
from services.sla.handlers.clocks import clock_key, clocks_started
from services.sla.handlers.state import SlaState
from shared.db import UnitOfWork
from shared.events import DeadlineSet, parse_payload

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Ticking:
    """A clock a microsecond later each time it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return START + timedelta(microseconds=self.reads)


def _row(n: int) -> dict[str, Any]:
    return {
        "ticket_id": f"TJ{n:04d}",
        "kind": ClockKind("acceptance"),
        "round": 1,
        "dispatch_no": 1,
        "unit_id": "河西区供热办",
        "period": "30m",
        "started_at": START,
        "deadline": START + timedelta(minutes=30),
        "provisional": n % 2 == 0,
        "next_due_at": START + timedelta(minutes=30),
    }


def test_the_clocks_one_write_started_are_announced_at_one_time_each_under_its_trace() -> None:
    """One ``DeadlineSet`` a clock the insert took (not one it refused), each carrying the
    clock's values and its own event's trace id; the announcements of one write share their
    time, read once from the service's clock."""
    clock = Ticking()
    ctx: Any = types.SimpleNamespace(clock=clock, extras={"sla": SlaState()})
    uow = UnitOfWork(None)  # type: ignore[arg-type]  # nothing is written here
    rows = [_row(n) for n in range(4)]
    inserted = [
        {"ticket_id": r["ticket_id"], "kind": "acceptance", "round": 1, "dispatch_no": 1}
        for r in rows
        if r["ticket_id"] != "TJ0002"
    ]
    clocks_started(ctx, uow, rows, inserted, [f"追踪-{n}" for n in range(4)])
    assert [e.trace_id for e in uow.events] == ["追踪-0", "追踪-1", "追踪-3"]
    assert {e.occurred_at for e in uow.events} == {START + timedelta(microseconds=1)}
    assert clock.reads == 1
    for event, row in zip(uow.events, [rows[0], rows[1], rows[3]], strict=True):
        announced = parse_payload(event.as_envelope())
        assert isinstance(announced, DeadlineSet)
        assert clock_key(announced.model_dump() | {"kind": "acceptance"}) == clock_key(row)
        assert announced == DeadlineSet(
            ticket_id=row["ticket_id"],
            clock="acceptance",
            round=1,
            dispatch_no=1,
            unit_id="河西区供热办",
            started_at=START,
            deadline=START + timedelta(minutes=30),
            period="30m",
            provisional=row["provisional"],
        )


def test_every_clock_of_a_write_that_took_them_all_is_announced_in_order() -> None:
    ctx: Any = types.SimpleNamespace(clock=Ticking(), extras={"sla": SlaState()})
    uow = UnitOfWork(None)  # type: ignore[arg-type]
    rows = [_row(n) for n in range(4)]
    inserted = [
        {"ticket_id": r["ticket_id"], "kind": "acceptance", "round": 1, "dispatch_no": 1}
        for r in reversed(rows)  # the insert's order is its own
    ]
    clocks_started(ctx, uow, rows, inserted, [f"追踪-{n}" for n in range(4)])
    assert [e.trace_id for e in uow.events] == [f"追踪-{n}" for n in range(4)]
    assert [e.ticket_id for e in uow.events] == [r["ticket_id"] for r in rows]
    clocks_started(ctx, uow, rows, [], [f"追踪-{n}" for n in range(4)])  # none taken
    assert len(uow.events) == 4
