"""Set-based twins of the hot consumers in ``clocks.py`` (shared/consumer.py's fast path):
the same effects for a run of events of one type about distinct tickets, in a few
statements for the whole run instead of a few per event; on PostgreSQL in one statement
(the ticket's row and the clock it stops as data-modifying CTEs of the new clocks' insert)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql

from services.sla.domain import ClockKind
from services.sla.handlers.clocks import (
    CLOCK_KEY,
    RUNNING,
    Timings,
    acceptance_clock,
    clocks_started,
    dispatch_clock,
    dispatched_ticket,
    registered_ticket,
    start_clocks,
)
from services.sla.models import clocks, tickets
from shared.db import UnitOfWork, fetch_rows, insert_new, update_many
from shared.events import Envelope, TicketDispatched, TicketRegistered, parse_payloads
from shared.service import ManyHandler, ServiceContext

# built once: update_many builds its statement once for each condition
_DISPATCH_CLOCK_RUNNING = (clocks.c.kind == ClockKind.DISPATCH, *RUNNING)


def _given(table: Table, name: str, columns: tuple[str, ...]) -> Any:
    """Rows given as one array parameter ``<name>_<column>`` per column of ``table``
    (PostgreSQL): ``unnest`` of them as a table ``name``."""
    arrays = (
        bindparam(f"{name}_{c}", type_=postgresql.ARRAY(table.c[c].type, dimensions=1))
        for c in columns
    )
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=name)


def _arrays(name: str, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    return {f"{name}_{c}": [r[c] for r in rows] for c in rows[0]}


def _clocks_inserted_with(clock_columns: tuple[str, ...], *ctes: Any) -> Any:
    """INSERT the clocks ``c`` (ON CONFLICT DO NOTHING) RETURNING their keys, with ``ctes``
    (data-modifying: they run in the same statement, on the same snapshot)."""
    given = _given(clocks, "c", clock_columns)
    return (
        postgresql.insert(clocks)
        .from_select(clock_columns, select(*given.c))
        .on_conflict_do_nothing()
        .returning(*CLOCK_KEY)
        .add_cte(*ctes)
    )


@lru_cache(maxsize=8)
def _registered_pg(ticket_columns: tuple[str, ...], clock_columns: tuple[str, ...]) -> Any:
    """The tickets ``t`` inserted (those not there), with their dispatch clocks."""
    given = _given(tickets, "t", ticket_columns)
    ticket = (
        postgresql.insert(tickets)
        .from_select(ticket_columns, select(*given.c))
        .on_conflict_do_nothing()
        .cte("ticket")
    )
    return _clocks_inserted_with(clock_columns, ticket)


@lru_cache(maxsize=8)
def _dispatched_pg(ticket_columns: tuple[str, ...], clock_columns: tuple[str, ...]) -> Any:
    """The tickets ``t`` updated, their running dispatch clocks stopped at ``s``'s
    ``stopped_at``, and their acceptance clocks started."""
    given = _given(tickets, "t", ticket_columns)
    ticket = (
        update(tickets)
        .where(tickets.c.ticket_id == given.c.ticket_id)
        .values({c: given.c[c] for c in ticket_columns if c != "ticket_id"})
        .cte("ticket")
    )
    stop = _given(clocks, "s", ("ticket_id", "stopped_at"))
    stopped = (
        update(clocks)
        .where(clocks.c.ticket_id == stop.c.ticket_id, *_DISPATCH_CLOCK_RUNNING)
        .values(stopped_at=stop.c.stopped_at, next_due_at=None)
        .cte("stopped")
    )
    return _clocks_inserted_with(clock_columns, ticket, stopped)


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketRegistered)
    ticket_rows = [registered_ticket(e) for e in events]
    timings: Timings = {}
    clock_rows = [dispatch_clock(ctx, e, timings) for e in events]
    if uow.conn.dialect.name != "postgresql":
        await insert_new(uow.conn, tickets, ticket_rows)
        await start_clocks(ctx, uow, clock_rows, _traces(batch))
        return
    stmt = _registered_pg(tuple(ticket_rows[0]), tuple(clock_rows[0]))
    params = _arrays("t", ticket_rows) | _arrays("c", clock_rows)
    inserted = await fetch_rows(uow.conn, stmt, params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketDispatched)
    ticket_rows = [dispatched_ticket(e) for e in events]
    stops = [
        {"ticket_id": e.ticket_id, "stopped_at": e.dispatched_at, "next_due_at": None}
        for e in events
    ]
    timings: Timings = {}
    clock_rows = [acceptance_clock(ctx, e, timings) for e in events]
    if uow.conn.dialect.name != "postgresql":
        await update_many(uow.conn, tickets, ["ticket_id"], ticket_rows)
        await update_many(uow.conn, clocks, ["ticket_id"], stops, *_DISPATCH_CLOCK_RUNNING)
        await start_clocks(ctx, uow, clock_rows, _traces(batch))
        return
    stmt = _dispatched_pg(tuple(ticket_rows[0]), tuple(clock_rows[0]))
    params = _arrays("t", ticket_rows) | _arrays("c", clock_rows)
    params |= {"s_ticket_id": [s["ticket_id"] for s in stops]}
    params |= {"s_stopped_at": [s["stopped_at"] for s in stops]}
    inserted = await fetch_rows(uow.conn, stmt, params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


def _traces(batch: Sequence[Envelope]) -> list[str | None]:
    """Each event's trace id, for what is announced about its ticket (one clock an event,
    in the events' order)."""
    return [e.trace_id for e in batch]


MANY_HANDLERS: dict[str, ManyHandler] = {
    TicketRegistered.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
}
