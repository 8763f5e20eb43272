"""Set-based twins of the hot consumers in ``clocks.py`` (shared/consumer.py's fast path):
the same effects for a run of events of one type about distinct tickets, in a few
statements for the whole run instead of a few per event; on PostgreSQL in one statement
(the ticket's row and the clock it stops as data-modifying CTEs of the new clocks' insert)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, select, update
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
from shared.consumer import traced
from shared.db import (
    UnitOfWork,
    fetch_rows,
    given_rows,
    given_values,
    insert_new,
    update_many,
)
from shared.events import Header, RegisteredView, TicketDispatched, parse_payloads
from shared.service import ManyHandler, ServiceContext

# built once: update_many builds its statement once for each condition
_DISPATCH_CLOCK_RUNNING = (clocks.c.kind == ClockKind.DISPATCH, *RUNNING)


def _given(table: Table, name: str, columns: tuple[str, ...]) -> dict[str, Any]:
    """A run's rows of ``columns`` of ``table`` (their parameters ``_values(name, rows)``)
    as the statement reads them (shared/db.py ``given_rows``: a column the rows all hold
    alike as one value), by column."""
    given = given_rows({f"{name}_{c}": table.c[c].type for c in columns}, alias=name)
    return {c: given[f"{name}_{c}"] for c in columns}


def _values(name: str, rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The rows' columns and their parameters for ``_given``."""
    columns = tuple(rows[0])
    return columns, given_values({f"{name}_{c}": [r[c] for r in rows] for c in columns})


def _rows_of(table: Table, name: str, columns: tuple[str, ...]) -> Any:
    """``SELECT`` of the rows ``_given``, in their columns' order."""
    return select(*_given(table, name, columns).values())


def _inserted(table: Table, name: str, columns: tuple[str, ...], new_facts: bool) -> Any:
    """INSERT the rows ``name`` into ``table``: ON CONFLICT DO NOTHING unless they are
    taken for ``new_facts`` (shared/db.py ``insert_new``'s ``all_new``: one already there
    fails the statement, for the consumer to run the batch again ignoring duplicates)."""
    stmt = postgresql.insert(table).from_select(columns, _rows_of(table, name, columns))
    return stmt if new_facts else stmt.on_conflict_do_nothing()


def _clocks_inserted_with(clock_columns: tuple[str, ...], new_facts: bool, *ctes: Any) -> Any:
    """INSERT the clocks ``c`` (``_inserted``) RETURNING their keys, with ``ctes``
    (data-modifying: they run in the same statement, on the same snapshot)."""
    return _inserted(clocks, "c", clock_columns, new_facts).returning(*CLOCK_KEY).add_cte(*ctes)


# one statement for each set of columns of a run's rows (one: the handlers' own) and way
# of inserting
@lru_cache(maxsize=64)
def _registered_pg(
    ticket_columns: tuple[str, ...], clock_columns: tuple[str, ...], new_facts: bool
) -> Any:
    """The tickets ``t`` inserted (those not there), with their dispatch clocks ``c``."""
    ticket = _inserted(tickets, "t", ticket_columns, new_facts).cte("ticket")
    return _clocks_inserted_with(clock_columns, new_facts, ticket)


@lru_cache(maxsize=64)
def _dispatched_pg(
    ticket_columns: tuple[str, ...],
    stop_columns: tuple[str, ...],
    clock_columns: tuple[str, ...],
    new_facts: bool,
) -> Any:
    """The tickets ``t`` updated, their running dispatch clocks stopped at ``s``'s
    ``stopped_at``, and their acceptance clocks ``c`` started."""
    given = _given(tickets, "t", ticket_columns)
    ticket = (
        update(tickets)
        .where(tickets.c.ticket_id == given["ticket_id"])
        .values({c: value for c, value in given.items() if c != "ticket_id"})
        .cte("ticket")
    )
    stop = _given(clocks, "s", stop_columns)
    stopped = (
        update(clocks)
        .where(clocks.c.ticket_id == stop["ticket_id"], *_DISPATCH_CLOCK_RUNNING)
        .values(stopped_at=stop["stopped_at"], next_due_at=None)
        .cte("stopped")
    )
    return _clocks_inserted_with(clock_columns, new_facts, ticket, stopped)


# each emits what it announces about a ticket under that ticket's trace id (``_traces``)
@traced
async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    events = parse_payloads(batch, RegisteredView)
    ticket_rows = [registered_ticket(e) for e in events]
    timings: Timings = {}
    clock_rows = [dispatch_clock(ctx, e, timings) for e in events]
    if uow.conn.dialect.name != "postgresql":
        await insert_new(uow.conn, tickets, ticket_rows)
        await start_clocks(ctx, uow, clock_rows, _traces(batch))
        return
    ticket_columns, params = _values("t", ticket_rows)
    clock_columns, clock_params = _values("c", clock_rows)
    stmt = _registered_pg(ticket_columns, clock_columns, uow.new_facts)
    inserted = await fetch_rows(uow.conn, stmt, params | clock_params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


@traced
async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
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
    ticket_columns, params = _values("t", ticket_rows)
    stop_columns, stop_params = _values("s", stops)
    clock_columns, clock_params = _values("c", clock_rows)
    stmt = _dispatched_pg(ticket_columns, stop_columns, clock_columns, uow.new_facts)
    inserted = await fetch_rows(uow.conn, stmt, params | stop_params | clock_params)
    clocks_started(ctx, uow, clock_rows, inserted, _traces(batch))


def _traces(batch: Sequence[Header]) -> list[str | None]:
    """Each event's trace id, for what is announced about its ticket (one clock an event,
    in the events' order)."""
    return [e.trace_id for e in batch]


MANY_HANDLERS: dict[str, ManyHandler] = {
    RegisteredView.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
}
# the bus reads a run's registrations as the fields read here
READ_AS = {RegisteredView.TYPE: RegisteredView}
