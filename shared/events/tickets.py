"""Ticket events (hotline.tickets): intake and dispatch."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.events.base import (
    Channel,
    Event,
    TicketType,
    Urgency,
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
    registered_at: AwareDatetime
    anonymous: bool = False
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
    dispatched_at: AwareDatetime
    round: int = 1  # 2 = re-handling round (Art 14)
    statutory_period: str | None = None  # e.g. "15wd"; replaces the completion period


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
    accepted_at: AwareDatetime
    round: int = 1


class Reply(BaseModel):
    """答复 (Art 13): what a completion reply must carry."""

    model_config = ConfigDict(frozen=True)
    policy_basis: str
    progress: str
    result: str
    contacted_at: AwareDatetime
    process: str
    feedback: str


@event
class TicketCompleted(Event):
    TYPE = "ticket.completed"
    ticket_id: str
    unit_id: str
    completed_at: AwareDatetime
    round: int = 1
    type: TicketType
    reply: Reply
