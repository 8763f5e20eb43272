"""SLA events (hotline.sla)."""

from __future__ import annotations

from pydantic import AwareDatetime

from shared.events.base import (
    ClockKind,
    Event,
    event,
)


@event
class DeadlineSet(Event):
    TYPE = "sla.deadline_set"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    unit_id: str | None = None
    started_at: AwareDatetime
    deadline: AwareDatetime
    period: str
    provisional: bool = False


@event
class Overdue(Event):
    TYPE = "sla.overdue"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    unit_id: str | None = None
    deadline: AwareDatetime
    detected_at: AwareDatetime
    late_seconds: float
