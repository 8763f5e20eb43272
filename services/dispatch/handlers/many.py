"""Set-based twins of the hot consumers (shared/consumer.py's fast path): the same effects
as ``tickets.on_ticket_registered`` and ``read_models.on_deadline_set`` for a run of events
of one type about distinct tickets, in a few statements for the whole run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from services.dispatch.domain import route
from services.dispatch.handlers.common import (
    fallback_acceptance_deadline,
    matter_from_row,
    unit_from_row,
)
from services.dispatch.handlers.read_models import DEADLINE_READ, deadline_values
from services.dispatch.handlers.tickets import (
    assignment_row,
    dispatched_event,
    on_ticket_registered,
)
from services.dispatch.models import assignments, flags, matter_units, matters, units
from shared.db import UnitOfWork, insert_new, pair_of, rows_in, update_many
from shared.events import DeadlineSet, Envelope, TicketRegistered, parse_payloads
from shared.service import ManyHandler, ServiceContext


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    """Tickets whose matter and district the catalog gives a unit are dispatched together;
    the others (determination, suggestion, manual queue) take the one-by-one way."""
    events = parse_payloads(batch, TicketRegistered)
    conn = uow.conn
    found = await rows_in(conn, (matters,), matters.c.code, {e.matter_code for e in events})
    found_matters = {r.code: matter_from_row(r) for r in found}
    catalog: dict[tuple[str, str], Any] = {}
    for r in (
        await conn.execute(
            select(units, matter_units.c.matter_code.label("routed_matter"))
            .add_columns(matter_units.c.district.label("routed_district"))
            .join(matter_units, matter_units.c.unit_id == units.c.unit_id)
            .where(
                pair_of(
                    conn,
                    (matter_units.c.matter_code, matter_units.c.district),
                    {(e.matter_code, e.district) for e in events},
                )
            )
        )
    ).all():
        catalog.setdefault((r.routed_matter, r.routed_district), r)
    flagged = {
        r.ticket_id
        for r in await rows_in(
            conn, (flags.c.ticket_id,), flags.c.ticket_id, [e.ticket_id for e in events]
        )
    }
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = []
    elsewhere: list[Envelope] = []
    for envelope, event in zip(batch, events, strict=True):
        unit_row = catalog.get((event.matter_code, event.district))
        matter = found_matters.get(event.matter_code)
        decision = route(matter, unit_from_row(unit_row), names_any_unit=True) if unit_row else None
        if decision is None or decision.unit_id is None:
            elsewhere.append(envelope)
            continue
        rows.append(
            assignment_row(
                event,
                decision,
                matter,
                flagged=event.flagged or event.ticket_id in flagged,
                now=now,
                acceptance_deadline=await fallback_acceptance_deadline(ctx, event.urgency, now),
            )
        )
    # a registration re-sent under another event id opens nothing
    opened = {
        r.ticket_id for r in await insert_new(conn, assignments, rows, assignments.c.ticket_id)
    }
    uow.emit(*(dispatched_event(row) for row in rows if row["ticket_id"] in opened))
    for envelope in elsewhere:
        await on_ticket_registered(ctx, uow, envelope)


async def on_deadline_set(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, DeadlineSet)
    wanted = {e.ticket_id for e in events}
    current = {
        r.ticket_id: r
        for r in await rows_in(uow.conn, DEADLINE_READ, assignments.c.ticket_id, wanted)
    }
    changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for event in events:
        values = deadline_values(event, current.get(event.ticket_id))
        if values is not None:
            changes.setdefault(tuple(values), []).append({"ticket_id": event.ticket_id, **values})
    for rows in changes.values():  # one statement per set of columns (clock kind)
        await update_many(uow.conn, assignments, ["ticket_id"], rows)


MANY_HANDLERS: dict[str, ManyHandler] = {
    TicketRegistered.TYPE: on_registered,
    DeadlineSet.TYPE: on_deadline_set,
}
