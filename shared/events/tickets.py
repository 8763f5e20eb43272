"""Ticket events (hotline.tickets): intake and dispatch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import (
    Channel,
    Event,
    EventTime,
    TicketType,
    Urgency,
    View,
    event,
)


@event
class TicketRegistered(Event):
    TYPE = "ticket.registered"
    ticket_id: str
    channel: Channel
    type: TicketType
    urgency: Urgency
    matter_code: str
    district: str
    address: str | None = None
    content: str
    registered_at: EventTime
    anonymous: bool = False
    flagged: bool = False


class RegisteredView(View):
    """What the SLA and evaluation consumers read of a ``ticket.registered`` (not its text,
    address or anonymity): a set-based run's registrations are read as this (``View``)."""

    FULL = TicketRegistered
    ticket_id: str
    channel: Channel
    type: TicketType
    urgency: Urgency
    matter_code: str
    district: str
    registered_at: EventTime
    flagged: bool = False


@event
class TicketDispatched(Event):
    TYPE = "ticket.dispatched"
    ticket_id: str
    unit_id: str
    matter_code: str
    district: str
    type: TicketType
    urgency: Urgency
    dispatched_at: EventTime
    round: int = 1  # 2 = re-handling round (Art 14)
    statutory_period: str | None = None  # e.g. "15wd"; replaces the completion period
    # 1 for the first dispatch; +1 for each re-dispatch after an approved return (Art 10):
    # the SLA service restarts the acceptance clock from every new dispatch.
    dispatch_no: int = 1
    # co-handling units (协办) of a joint determination. Lists default to a factory, not
    # ``[]``: pydantic deep-copies a list default for each model made without it (~1 us a
    # model, a tenth of that for ``list()``), as dispatch makes every ``ticket.dispatched``
    co_unit_ids: list[str] = Field(default_factory=list)


@event
class TicketPendingDetermination(Event):
    TYPE = "ticket.pending_determination"
    ticket_id: str
    matter_code: str
    district: str
    reason: str


@event
class TicketAccepted(Event):
    TYPE = "ticket.accepted"
    ticket_id: str
    unit_id: str
    accepted_at: EventTime
    round: int = 1


class Reply(BaseModel):
    """答复 (Art 13): what a completion reply must carry."""

    model_config = ConfigDict(frozen=True)
    policy_basis: str
    progress: str
    result: str
    contacted_at: EventTime
    process: str
    feedback: str


@event
class TicketCompleted(Event):
    TYPE = "ticket.completed"
    ticket_id: str
    unit_id: str
    completed_at: EventTime
    round: int = 1
    type: TicketType
    reply: Reply


@event
class TicketAnswered(Event):
    """Answered on the spot (Art 6): the ticket is closed and never dispatched."""

    TYPE = "ticket.answered"
    ticket_id: str
    answered_at: EventTime
    answer: str
    knowledge_entry_ids: list[str] = Field(default_factory=list)
    answered_by: str
    # No ticket.registered precedes an answer on the spot, so the ticket's own facts travel
    # here, for statistics and hotspot monitoring (Art 27).
    channel: Channel | None = None
    type: TicketType | None = None
    urgency: Urgency | None = None
    matter_code: str | None = None
    district: str | None = None
    registered_at: EventTime | None = None
    flagged: bool = False


@event
class TicketFlagged(Event):
    """Sensitive or extreme content (Art 27): goes to the head of every queue."""

    TYPE = "ticket.flagged"
    ticket_id: str
    flagged_at: EventTime
    keywords: list[str]
    district: str
    matter_code: str


@event
class CallRated(Event):
    """话务服务评价 (Art 14 (1)): the requester rates the operator after a phone call."""

    TYPE = "ticket.call_rated"
    ticket_id: str
    operator: str
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    rated_at: EventTime


@event
class ReturnRequested(Event):
    """退回 (Art 10): the assigned unit asks to hand the ticket back."""

    TYPE = "ticket.return_requested"
    ticket_id: str
    unit_id: str
    reason: str
    basis: str
    requested_at: EventTime


@event
class ReturnApproved(Event):
    """The agency approves a return: the ticket goes back to pending_dispatch and every
    clock restarts from the new dispatch (the SLA service cancels the running ones)."""

    TYPE = "ticket.return_approved"
    ticket_id: str
    unit_id: str
    decided_by: str
    decided_at: EventTime
    note: str | None = None


@event
class ReturnRejected(Event):
    """The agency rejects a return: the unit continues; no clock changes."""

    TYPE = "ticket.return_rejected"
    ticket_id: str
    unit_id: str
    decided_by: str
    decided_at: EventTime
    reason: str


@event
class DeterminationMade(Event):
    """职责界定 (Art 8): who decided which unit leads (and which co-handle), and why."""

    TYPE = "ticket.determination_made"
    ticket_id: str
    lead_unit_id: str
    co_unit_ids: list[str] = Field(default_factory=list)
    decided_by: str
    decided_role: str  # authority (same industry) or agency (cross-industry, jointly)
    decided_at: EventTime
    reason: str


@event
class RehandlingStarted(Event):
    """再次办理 (Art 14): back to the same unit once; a ticket.dispatched with round 2
    follows and starts fresh acceptance and completion clocks (never extendable)."""

    TYPE = "ticket.rehandling_started"
    ticket_id: str
    unit_id: str
    started_at: EventTime
