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


# the columns of a run's rows as a statement takes them: each column's name, and whether
# every row of the run holds the same value there (then sent as that one value)
Shape = tuple[tuple[str, bool], ...]


def _given(table: Table, name: str, shape: Shape) -> dict[str, Any]:
    """Rows given as parameters ``<name>_<column>`` of columns of ``table`` (PostgreSQL):
    one array per column, ``unnest`` of them as a table ``name``, but one value for a column
    the rows all hold alike (the driver checks and encodes every element of an array, the
    server reads each). The rows' columns by name, as the statement reads them."""
    arrays = [c for c, alike in shape if not alike]
    typed = (
        bindparam(f"{name}_{c}", type_=postgresql.ARRAY(table.c[c].type, dimensions=1))
        for c in arrays
    )
    given = func.unnest(*typed).table_valued(*arrays).render_derived(name=name)
    return {
        c: bindparam(f"{name}_{c}", type_=table.c[c].type) if alike else given.c[c]
        for c, alike in shape
    }


def _arrays(name: str, rows: Sequence[dict[str, Any]]) -> tuple[Shape, dict[str, Any]]:
    """The rows' shape and parameters for ``_given``: each column's values, or the one
    value all the rows hold there (never for the ticket: one a row)."""
    shape: list[tuple[str, bool]] = []
    params: dict[str, Any] = {}
    for column in rows[0]:
        values = [r[column] for r in rows]
        alike = column != "ticket_id" and values.count(values[0]) == len(values)
        shape.append((column, alike))
        params[f"{name}_{column}"] = values[0] if alike else values
    return tuple(shape), params


def _rows_of(table: Table, name: str, shape: Shape) -> Any:
    """``SELECT`` of the rows ``_given``, in the shape's order."""
    return select(*_given(table, name, shape).values())


def _clocks_inserted_with(clock_shape: Shape, *ctes: Any) -> Any:
    """INSERT the clocks ``c`` (ON CONFLICT DO NOTHING) RETURNING their keys, with ``ctes``
    (data-modifying: they run in the same statement, on the same snapshot)."""
    return (
        postgresql.insert(clocks)
        .from_select([c for c, _ in clock_shape], _rows_of(clocks, "c", clock_shape))
        .on_conflict_do_nothing()
        .returning(*CLOCK_KEY)
        .add_cte(*ctes)
    )


# one statement for each shape of a run's rows (a few: which columns its tickets share)
@lru_cache(maxsize=64)
def _registered_pg(ticket_shape: Shape, clock_shape: Shape) -> Any:
    """The tickets ``t`` inserted (those not there), with their dispatch clocks ``c``."""
    ticket = (
        postgresql.insert(tickets)
        .from_select([c for c, _ in ticket_shape], _rows_of(tickets, "t", ticket_shape))
        .on_conflict_do_nothing()
        .cte("ticket")
    )
    return _clocks_inserted_with(clock_shape, ticket)


@lru_cache(maxsize=64)
def _dispatched_pg(ticket_shape: Shape, stop_shape: Shape, clock_shape: Shape) -> Any:
    """The tickets ``t`` updated, their running dispatch clocks stopped at ``s``'s
    ``stopped_at``, and their acceptance clocks ``c`` started."""
    given = _given(tickets, "t", ticket_shape)
    ticket = (
        update(tickets)
        .where(tickets.c.ticket_id == given["ticket_id"])
        .values({c: value for c, value in given.items() if c != "ticket_id"})
        .cte("ticket")
    )
    stop = _given(clocks, "s", stop_shape)
    stopped = (
        update(clocks)
        .where(clocks.c.ticket_id == stop["ticket_id"], *_DISPATCH_CLOCK_RUNNING)
        .values(stopped_at=stop["stopped_at"], next_due_at=None)
        .cte("stopped")
    )
    return _clocks_inserted_with(clock_shape, ticket, stopped)


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketRegistered)
    ticket_rows = [registered_ticket(e) for e in events]
    timings: Timings = {}
    clock_rows = [dispatch_clock(ctx, e, timings) for e in events]
    if uow.conn.dialect.name != "postgresql":
        await insert_new(uow.conn, tickets, ticket_rows)
        await start_clocks(ctx, uow, clock_rows, _traces(batch))
        return
    ticket_shape, params = _arrays("t", ticket_rows)
    clock_shape, clock_params = _arrays("c", clock_rows)
    stmt = _registered_pg(ticket_shape, clock_shape)
    inserted = await fetch_rows(uow.conn, stmt, params | clock_params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    events = parse_payloads(batch, TicketDispatched)
    ticket_rows = [dispatched_ticket(e) for e in events]
    stops = [{"ticket_id": e.ticket_id, "stopped_at": e.dispatched_at} for e in events]
    timings: Timings = {}
    clock_rows = [acceptance_clock(ctx, e, timings) for e in events]
    if uow.conn.dialect.name != "postgresql":
        await update_many(uow.conn, tickets, ["ticket_id"], ticket_rows)
        stopped = [s | {"next_due_at": None} for s in stops]
        await update_many(uow.conn, clocks, ["ticket_id"], stopped, *_DISPATCH_CLOCK_RUNNING)
        await start_clocks(ctx, uow, clock_rows, _traces(batch))
        return
    ticket_shape, params = _arrays("t", ticket_rows)
    stop_shape, stop_params = _arrays("s", stops)
    clock_shape, clock_params = _arrays("c", clock_rows)
    stmt = _dispatched_pg(ticket_shape, stop_shape, clock_shape)
    inserted = await fetch_rows(uow.conn, stmt, params | stop_params | clock_params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


def _traces(batch: Sequence[Envelope]) -> list[str | None]:
    """Each event's trace id, for what is announced about its ticket (one clock an event,
    in the events' order)."""
    return [e.trace_id for e in batch]


MANY_HANDLERS: dict[str, ManyHandler] = {
    TicketRegistered.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
}
