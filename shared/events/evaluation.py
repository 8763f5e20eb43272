"""Evaluation, supervision and monitoring events (hotline.evaluation)."""

from __future__ import annotations

from typing import Literal

from shared.events.base import (
    Event,
    EventTime,
    event,
)


@event
class RevisitRecorded(Event):
    TYPE = "evaluation.revisit_recorded"
    ticket_id: str
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    resolved: bool
    recorded_at: EventTime
    round: int = 1
    unit_id: str | None = None


@event
class RehandleRequested(Event):
    """再次办理 (Art 14): after a first dissatisfied rating the agency sends the ticket back
    to the same unit, once. Dispatch consumes it and re-dispatches with round 2."""

    TYPE = "evaluation.rehandle_requested"
    ticket_id: str
    unit_id: str
    requested_by: str
    requested_at: EventTime
    reason: str


@event
class EvaluationClosed(Event):
    """The ticket's evaluation is over (Art 14): a final rating, the agency closing a first
    dissatisfied rating instead of sending it back, or a praise/suggestion ticket closed
    without a revisit."""

    TYPE = "evaluation.closed"
    ticket_id: str
    round: int
    unit_id: str
    outcome: Literal["rated", "closed_by_agency", "not_required"]
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"] | None = None
    resolved: bool | None = None
    reason: str | None = None
    closed_at: EventTime


@event
class ExemptionFiled(Event):
    """Art 24: the unit explains a dissatisfied rating, with evidence files."""

    TYPE = "evaluation.exemption_filed"
    exemption_id: str
    ticket_id: str
    round: int
    unit_id: str
    filed_by: str
    filed_at: EventTime
    file_count: int


@event
class ExemptionDecided(Event):
    """Art 24: the agency accepts (the rating no longer counts against the unit) or
    rejects the explanation, with a reason."""

    TYPE = "evaluation.exemption_decided"
    exemption_id: str
    ticket_id: str
    round: int
    unit_id: str
    decision: Literal["accepted", "rejected"]
    reason: str
    decided_by: str
    decided_at: EventTime


@event
class SupervisionOpened(Event):
    """督办 (Art 21), opened by hand or from an SLA escalation. ``unit_id`` answers: for a
    written supervision the supervised unit's parent (逐级负责、分级办理)."""

    TYPE = "supervision.opened"
    supervision_id: str
    kind: Literal["ticket", "written", "onsite", "special"]
    ticket_id: str | None = None
    subject_unit_id: str | None = None
    unit_id: str | None = None
    source: Literal["manual", "escalation"]
    escalation_level: int | None = None
    reason: str
    opened_by: str
    opened_at: EventTime
    due_at: EventTime


@event
class SupervisionAnswered(Event):
    TYPE = "supervision.answered"
    supervision_id: str
    ticket_id: str | None = None
    unit_id: str | None = None
    answer: str
    answered_by: str
    answered_at: EventTime


@event
class SupervisionClosed(Event):
    TYPE = "supervision.closed"
    supervision_id: str
    ticket_id: str | None = None
    note: str | None = None
    closed_by: str
    closed_at: EventTime


@event
class HotspotDetected(Event):
    """Art 27: many tickets on one matter in one district within the window. Emitted once
    per hotspot; later tickets of the same burst join it without a new event."""

    TYPE = "monitor.hotspot"
    hotspot_id: str
    matter_code: str
    district: str
    window: str
    threshold: int
    ticket_count: int
    first_registered_at: EventTime
    last_registered_at: EventTime
    detected_at: EventTime
    ticket_ids: list[str]
