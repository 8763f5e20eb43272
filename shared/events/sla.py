"""SLA events (hotline.sla)."""

from __future__ import annotations

from typing import Literal

from shared.events.base import (
    ClockKind,
    Event,
    EventTime,
    event,
)


@event
class DeadlineSet(Event):
    TYPE = "sla.deadline_set"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    dispatch_no: int = 1  # which dispatch of the round (re-dispatch after a return)
    unit_id: str | None = None
    started_at: EventTime
    deadline: EventTime
    period: str
    provisional: bool = False


@event
class Overdue(Event):
    TYPE = "sla.overdue"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    dispatch_no: int = 1  # which dispatch of the round (re-dispatch after a return)
    unit_id: str | None = None
    deadline: EventTime
    detected_at: EventTime
    late_seconds: float


@event
class ClockWarning(Event):
    """预警: the warning fraction (default 75 %) of a clock's period has elapsed."""

    TYPE = "sla.warning"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    dispatch_no: int = 1  # which dispatch of the round (re-dispatch after a return)
    unit_id: str | None = None
    deadline: EventTime
    warned_at: EventTime


@event
class Escalated(Event):
    """升级: level 1 at overdue → ticket supervision; level 2 at overdue plus one more
    period → written supervision to the unit's parent (Art 21)."""

    TYPE = "sla.escalated"
    ticket_id: str
    clock: ClockKind
    round: int = 1
    dispatch_no: int = 1  # which dispatch of the round (re-dispatch after a return)
    unit_id: str | None = None
    level: int
    supervision_kind: Literal["ticket", "written"]
    deadline: EventTime
    escalated_at: EventTime


@event
class ExtensionRequested(Event):
    """延期申请 (Art 12)."""

    TYPE = "sla.extension_requested"
    ticket_id: str
    extension_id: str
    unit_id: str
    reason: str
    progress: str
    measures: str
    requested_at: EventTime
    current_deadline: EventTime


@event
class ExtensionApproved(Event):
    TYPE = "sla.extension_approved"
    ticket_id: str
    extension_id: str
    unit_id: str
    decided_by: str
    decided_at: EventTime
    old_deadline: EventTime
    new_deadline: EventTime
    explanation_to_requester: str


@event
class ExtensionExplained(Event):
    """承办单位向诉求人作出解释 (Art 12): after approval the unit tells the requester the
    progress, the measures and the new deadline, and records how and when."""

    TYPE = "sla.extension_explained"
    ticket_id: str
    extension_id: str
    unit_id: str
    channel: Literal["phone", "sms", "visit", "wechat", "letter"]
    explained_at: EventTime
    progress: str
    measures: str
    new_deadline: EventTime
    content: str
    recorded_by: str


@event
class ExtensionRejected(Event):
    TYPE = "sla.extension_rejected"
    ticket_id: str
    extension_id: str
    unit_id: str
    decided_by: str
    decided_at: EventTime
    reason: str
