"""SLA's announcements of new clocks (``clocks_started``), made without a database."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from services.sla.domain import ClockKind
from services.sla.handlers.clocks import clock_key, clocks_started, deadline_fields, deadline_json
from services.sla.handlers.state import SlaState
from shared.db import UnitOfWork
from shared.events import DeadlineSet, parse_payload
from shared.events.base import Outgoing

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


def _model_json(row: dict[str, Any]) -> bytes:
    event = DeadlineSet.of(deadline_fields(row))
    return event.__pydantic_serializer__.to_json(event)


def test_a_clocks_announcement_is_written_as_its_model_writes_it() -> None:
    """``deadline_json`` writes the bytes ``DeadlineSet`` writes of a clock's row, for times
    in UTC, in Shanghai and at other offsets of whole minutes, with and without
    microseconds, for every kind, Chinese and missing units, and large numbers; a value
    of a type it does not write as the model does leaves it to the model (None)."""
    from zoneinfo import ZoneInfo

    from pydantic_core import TzInfo

    zones: list[Any] = [
        UTC,
        TzInfo(0),
        TzInfo(8 * 3600),
        timezone(timedelta(hours=8)),
        ZoneInfo("Asia/Shanghai"),
        ZoneInfo("UTC"),
        timezone(timedelta(hours=-3, minutes=-30)),
    ]
    rows = []
    for n in range(400):
        zone = zones[n % len(zones)]
        started = datetime(1900 + n * 7 % 300, 1 + n % 12, 1 + n % 28, n % 24, tzinfo=zone)
        started += timedelta(microseconds=(0, 1, 1000, 999_999)[n % 4], seconds=n)
        rows.append(
            _row(n)
            | {
                "kind": list(ClockKind)[n % 3],
                "round": (1, 2, 2**62)[n % 3],
                "dispatch_no": (1, 3, -5)[n % 3],
                "unit_id": (None, "河西区供热办", 'a "quoted"\\unit\n')[n % 3],
                "period": ("30m", "7wd", "24h")[n % 3],
                "started_at": started,
                "deadline": started.astimezone(zones[(n + 3) % len(zones)]) + timedelta(days=n),
            }
        )
    for row in rows:
        assert deadline_json(row) == _model_json(row)
    other: list[dict[str, Any]] = [
        {"started_at": START.astimezone(timezone(timedelta(seconds=30)))},  # seconds' offset
        {"deadline": datetime(1794, 10, 6, 11, 18, tzinfo=ZoneInfo("Asia/Shanghai"))},  # LMT
        {"round": True},
        {"round": 2**64},
        {"dispatch_no": 1.0},
        {"provisional": 1},
        {"ticket_id": StrSubclass("TJ1")},
        {"kind": "acceptance"},
    ]
    for change in other:
        row = _row(1) | change
        assert deadline_json(row) is None, change
    for change in other[:2]:  # the model writes them, its own way
        row = _row(1) | change
        assert _model_json(row) != orjson.dumps(deadline_fields(row), option=orjson.OPT_UTC_Z)


class StrSubclass(str):
    pass


def test_a_runs_announcements_are_the_models_but_for_their_ids() -> None:
    """The envelopes of a run's announcements whose payloads ``clocks_started`` wrote are
    byte for byte those the model's run makes (``DeadlineSet.outgoing_run``) but for their
    ids, and read back as the same events; a run with a value the model must judge is made
    by the model."""
    ctx: Any = types.SimpleNamespace(clock=Ticking(), extras={"sla": SlaState()})
    shanghai = timezone(timedelta(hours=8))
    rows = [
        _row(n) | {"started_at": START.astimezone(shanghai) + timedelta(microseconds=n)}
        for n in range(5)
    ]
    traces = ["追踪-0", None, "trace-2", "追踪-3", None]
    for run in (rows, [*rows[:2], rows[2] | {"round": True}]):  # True: the model's run
        uow = UnitOfWork(None)  # type: ignore[arg-type]
        clocks_started(ctx, uow, run, run, traces[: len(run)])
        made = DeadlineSet.outgoing_run(
            [deadline_fields(row) for row in run],
            producer="sla",
            occurred_at=uow.events[0].occurred_at,
            trace_ids=traces[: len(run)],
        )
        for event, model in zip(uow.events, made, strict=True):
            assert isinstance(event, Outgoing) and event.to_json() == model.to_json().replace(
                model.id_text.encode(), event.id_text.encode()
            )
            for name in ("type", "version", "topic", "key", "trace_id"):
                assert getattr(event, name) == getattr(model, name), name
            assert event.event == model.event and event.payload == model.payload
            assert event.as_envelope() == model.as_envelope().model_copy(
                update={"event_id": event.event_id}
            )
            assert event.with_trace_id("其他").to_json() == model.with_trace_id(
                "其他"
            ).to_json().replace(model.id_text.encode(), event.id_text.encode())
