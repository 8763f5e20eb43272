"""Set-based twins of the hot consumers in ``clocks.py`` (shared/consumer.py's fast path):
the same effects for a run of events of one type about distinct tickets, in a few
statements for the whole run instead of a few per event."""

from __future__ import annotations

from collections.abc import Sequence

from services.sla.domain import ClockKind
from services.sla.handlers.clocks import (
    RUNNING,
    acceptance_clock,
    dispatch_clock,
    dispatched_ticket,
    registered_ticket,
    start_clocks,
)
from services.sla.models import clocks, tickets
from shared.db import UnitOfWork, insert_new, update_many
from shared.events import Envelope, TicketDispatched, TicketRegistered, parse_payloads
from shared.service import ManyHandler, ServiceContext

# built once: update_many builds its statement once for each condition
_DISPATCH_CLOCK_RUNNING = (clocks.c.kind == ClockKind.DISPATCH, *RUNNING)


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketRegistered)
    await insert_new(uow.conn, tickets, [registered_ticket(e) for e in events])
    await start_clocks(ctx, uow, [dispatch_clock(ctx, e) for e in events])


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketDispatched)
    await update_many(uow.conn, tickets, ["ticket_id"], [dispatched_ticket(e) for e in events])
    await update_many(
        uow.conn,
        clocks,
        ["ticket_id"],
        [
            {"ticket_id": e.ticket_id, "stopped_at": e.dispatched_at, "next_due_at": None}
            for e in events
        ],
        *_DISPATCH_CLOCK_RUNNING,
    )
    await start_clocks(ctx, uow, [acceptance_clock(ctx, e) for e in events])


MANY_HANDLERS: dict[str, ManyHandler] = {
    TicketRegistered.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
}
