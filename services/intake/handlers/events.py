"""Intake's event consumers: a read model of the dispatch catalog's matters, and each
ticket's status and reply as dispatch and evaluation move it along (for the citizen's
lookup and the operators' lists)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, or_

from services.intake.domain import STATUS_AFTER_EVENT, Status, ticket_serial
from services.intake.handlers.registration import forget_matters
from services.intake.models import matters, tickets
from shared.db import UnitOfWork, insert_ignoring_duplicates, update_many
from shared.events import (
    DeterminationMade,
    Envelope,
    Header,
    MatterPublished,
    RehandlingStarted,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
    RevisitRecorded,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketPendingDetermination,
    parse_payload,
)
from shared.service import EventHandler, ManyHandler, ServiceContext


async def on_matter_published(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, MatterPublished)
    values = {
        "name": event.name,
        "default_urgency": event.default_urgency,
        "anonymous_allowed": event.anonymous_allowed,
        "active": event.active,
    }
    stmt = insert_ignoring_duplicates(uow.conn, matters).values(code=event.code, **values)
    uow.after_commit.append(lambda: forget_matters(ctx))
    result = await uow.conn.execute(stmt)
    if result.rowcount == 0:
        await uow.conn.execute(matters.update().where(matters.c.code == event.code).values(values))


def progress(header: Header) -> tuple[str, dict[str, object]]:
    """The ticket a progress event is about and the status (and facts) it sets."""
    event = header.event()
    ticket_id = getattr(event, "ticket_id", None) or header.ticket_id
    values: dict[str, object] = {
        "status": STATUS_AFTER_EVENT[header.type],
        "status_at": header.occurred_at,
    }
    if isinstance(event, TicketDispatched):
        values["lead_unit_id"] = event.unit_id
    elif isinstance(event, ReturnApproved):
        values["lead_unit_id"] = None
    if isinstance(event, TicketCompleted):
        values["reply"] = event.reply.model_dump(mode="json")
        values["completed_at"] = event.completed_at
    return str(ticket_id), values


# Events of one ticket arrive in order on their topic; the ``status_at`` guard keeps an
# older fact (a late one from another topic, or the same fact re-sent) from undoing a newer
# one; a ticket closed on the spot has nothing follow.
_NEWER = (
    tickets.c.status != Status.ANSWERED,
    or_(tickets.c.status_at.is_(None), tickets.c.status_at <= bindparam("v_status_at")),
)


_NUMBERED = ("id", "ticket_id")


async def on_ticket_progress(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """A ticket event from dispatch or evaluation sets the status it names."""
    await on_progress(ctx, uow, [envelope])


async def on_progress(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    """``on_ticket_progress`` for many events (distinct tickets): one statement for each
    set of facts (one, for a run of one event type)."""
    changes: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for event in batch:
        ticket_id, values = progress(event)
        serial = ticket_serial(ticket_id)
        if serial is None:  # no ticket is numbered so
            continue
        # found by its serial and number (services.intake.models.numbered)
        row = {"id": serial, "ticket_id": ticket_id, **values}
        changes.setdefault(tuple(values), []).append(row)
    for rows in changes.values():
        await update_many(uow.conn, tickets, _NUMBERED, rows, *_NEWER)


_PROGRESS_EVENTS = (
    TicketDispatched,
    TicketPendingDetermination,
    DeterminationMade,
    TicketAccepted,
    ReturnRequested,
    ReturnApproved,
    ReturnRejected,
    TicketCompleted,
    RehandlingStarted,
    RevisitRecorded,
)
assert {e.TYPE for e in _PROGRESS_EVENTS} == set(STATUS_AFTER_EVENT)

EVENT_HANDLERS: dict[str, EventHandler] = {
    MatterPublished.TYPE: on_matter_published,
    **{e.TYPE: on_ticket_progress for e in _PROGRESS_EVENTS},
}
MANY_HANDLERS: dict[str, ManyHandler] = {e.TYPE: on_progress for e in _PROGRESS_EVENTS}
