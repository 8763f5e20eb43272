"""Dispatch's ``ticket.dispatched`` payloads written without the model (``dispatched_json``,
``dispatched_run``), held to the bytes and envelopes the model makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args
from zoneinfo import ZoneInfo

import orjson
from pydantic_core import TzInfo

from services.dispatch.handlers.tickets import dispatched_fields, dispatched_json, dispatched_run
from shared.events import TicketDispatched, TicketType, Urgency
from shared.events.base import Outgoing

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TYPES, URGENCIES = get_args(TicketType), get_args(Urgency)


def _row(n: int) -> dict[str, Any]:
    """A new work order's row as ``assignment_row`` makes it (what ``dispatched_fields``
    reads of it, and more)."""
    return {
        "ticket_id": f"TJ{n:04d}",
        "matter_code": "WATER-001",
        "district": "120103",
        "type": TYPES[n % len(TYPES)],
        "urgency": URGENCIES[n % len(URGENCIES)],
        "unit_id": "河西区供水办",
        "state": "dispatched",
        "round": 1,
        "statutory_period": "15wd",
        "content": "小区停水三天了，请尽快处理",
        "dispatched_at": START,
    }


def _model_json(row: dict[str, Any]) -> bytes:
    event = TicketDispatched.of(dispatched_fields(row))
    return event.__pydantic_serializer__.to_json(event)


def test_a_work_orders_dispatch_is_written_as_its_model_writes_it() -> None:
    """``dispatched_json`` writes the bytes ``TicketDispatched`` writes of a work order's
    row, for times in UTC, in Shanghai and at other offsets, with and without
    microseconds, every type and urgency, Chinese, quoted and control characters, and no
    statutory period; a value the model must judge leaves it to the model (None)."""
    # the services' clocks' zone, pydantic's decoded ones, Shanghai's, other offsets (one of
    # seconds, which orjson would write otherwise than pydantic)
    zones: list[Any] = [UTC, TzInfo(0), TzInfo(8 * 3600), ZoneInfo("Asia/Shanghai")]
    zones += [timezone(timedelta(minutes=m)) for m in (480, -210, 0.5)] + [ZoneInfo("UTC")]
    rows = []
    for n in range(240):
        at = datetime(1900 + n * 7 % 300, 1 + n % 12, 1 + n % 28, n % 24, tzinfo=zones[n % 8])
        at += timedelta(microseconds=(0, 1, 1000, 999_999)[n % 4], seconds=n)
        rows.append(
            _row(n)
            | {
                "dispatched_at": at,
                "statutory_period": (None, "15wd", "30d")[n % 3],
                "unit_id": ("河西区供水办", 'a "quoted"\\unit\n', "city-water")[n % 3],
                "district": ("120103", "和平区\t")[n % 2],
            }
        )
    for row in rows:
        assert dispatched_json(row) == _model_json(row)
    other: list[dict[str, Any]] = [
        {"type": "praise?"},  # not a type of the model's: refused by it
        {"urgency": "urgent"},
        {"ticket_id": StrSubclass("TJ1")},
        {"unit_id": None},
        {"statutory_period": 15},
        {"dispatched_at": datetime(2026, 12, 7, 9, 0)},  # naive: refused by the model
        {"dispatched_at": "2026-12-07T09:00:00Z"},
    ]
    for change in other:
        assert dispatched_json(_row(1) | change) is None, change


class StrSubclass(str):
    pass


def test_a_runs_dispatches_are_the_models_but_for_their_ids() -> None:
    """The envelopes ``dispatched_run`` makes of a run's work orders are byte for byte those
    the model's run makes (``TicketDispatched.outgoing_run``) but for their ids, and read
    back as the same events; a run with a value the model must judge is made by the
    model."""
    shanghai = timezone(timedelta(hours=8))
    rows = [_row(n) | {"dispatched_at": START.astimezone(shanghai)} for n in range(5)]
    traces = ["追踪-0", None, "trace-2", "追踪-3", None]
    now = START + timedelta(microseconds=7)
    odd = rows[2] | {"unit_id": StrSubclass("city-water")}  # the model judges it
    for run in (rows, [*rows[:2], odd]):
        made = dispatched_run(run, occurred_at=now, trace_ids=traces[: len(run)])
        models = TicketDispatched.outgoing_run(
            [dispatched_fields(row) for row in run],
            producer="dispatch",
            occurred_at=now,
            trace_ids=traces[: len(run)],
        )
        assert len(made) == len(run)
        for event, model in zip(made, models, strict=True):
            assert isinstance(event, Outgoing) and event.to_json() == model.to_json().replace(
                model.id_text.encode(), event.id_text.encode()
            )
            for name in ("type", "version", "topic", "key", "trace_id", "ticket_id"):
                assert getattr(event, name) == getattr(model, name), name
            assert event.event == model.event and event.payload == model.payload
            assert orjson.loads(event.to_json())["payload"]["ticket_id"] == event.ticket_id
