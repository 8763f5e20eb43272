"""Facts other services tell dispatch: flagged tickets (Art 27) and the SLA's deadlines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from services.dispatch.models import (
    assignments,
    flags,
)
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.events import (
    DeadlineSet,
    Envelope,
    TicketFlagged,
    parse_payload,
)
from shared.service import ServiceContext

# A deadline event belongs to the current dispatch if its clock started at (or after) it.
CLOCK_TOLERANCE = timedelta(seconds=1)


# ---- facts from other services --------------------------------------------------------


async def on_ticket_flagged(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Sensitive content (Art 27): to the head of the unit's inbox."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketFlagged)
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, flags).values(
            ticket_id=event.ticket_id, flagged_at=event.flagged_at, keywords=event.keywords
        )
    )
    await uow.conn.execute(
        update(assignments).where(assignments.c.ticket_id == event.ticket_id).values(flagged=True)
    )


DEADLINE_COLUMNS = {
    "dispatch": "dispatch_deadline",
    "acceptance": "acceptance_deadline",
    "completion": "completion_deadline",
}


def deadline_values(event: DeadlineSet, row: Any) -> dict[str, Any] | None:
    """What the SLA's deadline changes on the assignment ``row``: nothing unless it
    belongs to the clock now running."""
    if row is None or event.round != row.round:
        return None
    started = {"acceptance": row.dispatched_at, "completion": row.accepted_at}.get(event.clock)
    if event.clock != "dispatch" and (
        started is None or event.started_at < started - CLOCK_TOLERANCE
    ):
        return None  # a clock of an earlier dispatch
    values: dict[str, Any] = {DEADLINE_COLUMNS[event.clock]: event.deadline}
    if event.clock != "dispatch":
        values["deadline_source"] = "sla"
    return values


# what ``deadline_values`` reads of an assignment
DEADLINE_READ = (
    assignments.c.ticket_id,
    assignments.c.round,
    assignments.c.dispatched_at,
    assignments.c.accepted_at,
)


async def on_deadline_set(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """The SLA's deadline replaces ours, if it belongs to the clock now running."""
    event = parse_payload(envelope)
    assert isinstance(event, DeadlineSet)
    row = (
        await uow.conn.execute(
            select(*DEADLINE_READ).where(assignments.c.ticket_id == event.ticket_id)
        )
    ).first()
    values = deadline_values(event, row)
    if values is None:
        return
    await uow.conn.execute(
        update(assignments).where(assignments.c.ticket_id == event.ticket_id).values(**values)
    )
