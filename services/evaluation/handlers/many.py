"""Set-based twins of the hot consumers in ``events.py`` (shared/consumer.py's fast path):
the same effects for a run of events of one type about distinct tickets, in a few
statements for the whole run instead of a few per event."""

from __future__ import annotations

from collections.abc import Sequence

from services.evaluation.handlers.events import (
    dispatched_ticket_row,
    dispatched_ticket_values,
    first_heard,
    handed_back,
    handling_row,
    registered_row,
)
from services.evaluation.handlers.monitoring import Registration, tally_hotspots
from services.evaluation.models import handlings, tickets
from shared.db import UnitOfWork, insert_new, upsert_many
from shared.events import Header, RegisteredView, TicketDispatched, parse_payloads
from shared.service import ManyHandler, ServiceContext


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    events = parse_payloads(batch, RegisteredView)
    rows = [registered_row(e) for e in events]
    # a ticket's row is there already if its dispatch was heard first (another topic)
    written = await insert_new(
        uow.conn, tickets, rows, tickets.c.ticket_id, all_new=uow.new_facts, some_there=True
    )
    created = {r.ticket_id for r in written}
    await tally_hotspots(
        ctx,
        uow,
        [
            Registration(e.ticket_id, e.matter_code, e.district, e.registered_at)
            for e in events
            if await first_heard(uow, e, created=e.ticket_id in created)
        ],
    )


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    events = parse_payloads(batch, TicketDispatched)
    await insert_new(uow.conn, handlings, [handling_row(e) for e in events], all_new=uow.new_facts)
    for event in events:
        await handed_back(uow, event)
    changes = [dispatched_ticket_values(e) for e in events]
    await upsert_many(
        uow.conn,
        tickets,
        ["ticket_id"],
        [dispatched_ticket_row(e) | values for e, values in zip(events, changes, strict=True)],
        list(changes[0]),
    )


MANY_HANDLERS: dict[str, ManyHandler] = {
    RegisteredView.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
}
# the bus reads a run's registrations as the fields read here
READ_AS = {RegisteredView.TYPE: RegisteredView}
