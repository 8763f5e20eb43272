"""Set-based twins of the hot consumers (shared/consumer.py's fast path): the same effects
as ``tickets.on_ticket_registered`` and ``read_models.on_deadline_set`` for a run of events
of one type about distinct tickets, in a few statements for the whole run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Interval,
    String,
    and_,
    delete,
    exists,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from services.dispatch.domain import CatalogMatter, Level, Route, Unit, route
from services.dispatch.handlers.common import (
    fallback_acceptance_deadline,
    matter_from_row,
    unit_from_row,
)
from services.dispatch.handlers.read_models import (
    CLOCK_TOLERANCE,
    DEADLINE_COLUMNS,
    DEADLINE_READ,
    deadline_values,
    is_early,
    keep_early,
    take_early,
)
from services.dispatch.handlers.tickets import assignment_row, dispatched_run, register
from services.dispatch.models import (
    assignments,
    early_dispatch_deadlines,
    flags,
    matter_units,
    matters,
    units,
)
from shared.consumer import traced
from shared.db import (
    UnitOfWork,
    UTCDateTime,
    fetch_rows,
    given_rows,
    given_values,
    in_list,
    insert_new,
    inserts_all_or_none,
    pair_of,
    rows_in,
    unnested,
    update_many,
)
from shared.events import DeadlineSet, Header, TicketRegistered, parse_payloads
from shared.logging import trace_id_var
from shared.service import ManyHandler, ServiceContext

# what a registration's routing needs to know of its ticket: the matter, the route its
# matter and the catalog's unit for its district give (None: no unit named), whether it is
# flagged, and the SLA's dispatch deadline if that came first (``take_early``)
Routing = tuple[CatalogMatter | None, Route | None, bool, datetime | None]


@cache
def _routing_read() -> Any:
    """One read of every ticket's routing (PostgreSQL): its matter, the unit the catalog
    names for its matter and district (matter_units' key), its flag, and the dispatch
    deadline that came before it, taken (``take_early`` as a data-modifying CTE), by the
    rows ``ticket_id``, ``matter_code`` and ``district`` (the ticket ids again as
    ``early_ids``: an array for ``= ANY``, one text for ``unnest``, shared/db.py
    ``unnested_type``)."""
    v = unnested({"ticket_id": String(32), "matter_code": String(32), "district": String(12)})
    early = early_dispatch_deadlines
    taken = (
        delete(early)
        .where(in_list(early.c.ticket_id, "early_ids", postgres=True))
        .returning(early.c.ticket_id, early.c.round, early.c.deadline)
        .cte("taken")
    )
    return select(
        v.c.ticket_id,
        *(matters.c[c].label(f"m_{c}") for c in _MATTER),
        *(units.c[c].label(f"u_{c}") for c in _UNIT),
        flags.c.ticket_id.label("flag"),
        taken.c.deadline.label("early_deadline"),
    ).select_from(
        v.outerjoin(matters, matters.c.code == v.c.matter_code)
        .outerjoin(
            matter_units,
            and_(
                matter_units.c.matter_code == v.c.matter_code,
                matter_units.c.district == v.c.district,
            ),
        )
        .outerjoin(units, units.c.unit_id == matter_units.c.unit_id)
        .outerjoin(flags, flags.c.ticket_id == v.c.ticket_id)
        .outerjoin(taken, and_(taken.c.ticket_id == v.c.ticket_id, taken.c.round == 1))
    )


# what routing reads of a matter (not its keywords) and of a unit
_MATTER = (
    "code",
    "name",
    "default_urgency",
    "functional_only",
    "statutory_period",
    "anonymous_allowed",
    "active",
)
_UNIT = ("unit_id", "name", "level", "functional", "industry", "district", "parent_id", "active")


async def _routings(conn: Any, events: Sequence[TicketRegistered]) -> dict[str, Routing]:
    if conn.dialect.name == "postgresql":
        ticket_ids = [e.ticket_id for e in events]
        rows = await fetch_rows(
            conn,
            _routing_read(),
            {
                "ticket_id": ticket_ids,
                "early_ids": ticket_ids,
                "matter_code": [e.matter_code for e in events],
                "district": [e.district for e in events],
            },
        )
        routings: dict[str, Routing] = {}
        for r in rows:
            matter, decision = _catalog_of(r[1:_ROUTED_END])
            routings[r.ticket_id] = (matter, decision, r.flag is not None, r.early_deadline)
        return routings
    # SQLite: three reads, and the early deadlines taken
    found = await rows_in(conn, (matters,), matters.c.code, {e.matter_code for e in events})
    found_matters = {r.code: matter_from_row(r) for r in found}
    catalog: dict[tuple[str, str], Unit] = {}
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
        catalog.setdefault((r.routed_matter, r.routed_district), unit_from_row(r))
    flagged = {
        r.ticket_id
        for r in await rows_in(
            conn, (flags.c.ticket_id,), flags.c.ticket_id, [e.ticket_id for e in events]
        )
    }
    early = await take_early(conn, [e.ticket_id for e in events])
    routings = {}
    for e in events:
        matter, unit = found_matters.get(e.matter_code), catalog.get((e.matter_code, e.district))
        decision = None if unit is None else route(matter, unit, names_any_unit=True)
        routings[e.ticket_id] = (matter, decision, e.ticket_id in flagged, early.get(e.ticket_id))
    return routings


# where a routing read's row ends its matter's and unit's columns (``_MATTER``, ``_UNIT``)
_ROUTED_END = 1 + len(_MATTER) + len(_UNIT)
# ``_catalog_of``'s: a matter and its route by the routing read's columns of the matter and
# the unit; forgotten all at once when full
_CATALOG_SEEN: dict[tuple[Any, ...], tuple[CatalogMatter | None, Route | None]] = {}
_CATALOG_SEEN_MAX = 8192


def _catalog_of(values: tuple[Any, ...]) -> tuple[CatalogMatter | None, Route | None]:
    """The matter and the route of a routing read's columns of a matter and its unit
    (``values``: ``_MATTER``'s then ``_UNIT``'s; a unit id None: the catalog names none, no
    route), made once for the process, not once a run (a run's tickets spread over ~100
    pairs, each a matter, a unit and a route made): both are made of these values alone
    (``route`` reads nothing else), and a catalog change changes the values read."""
    found = _CATALOG_SEEN.get(values)
    if found is None:
        if len(_CATALOG_SEEN) >= _CATALOG_SEEN_MAX:
            _CATALOG_SEEN.clear()
        code, name, urgency, functional_only, period, anonymous, active = values[: len(_MATTER)]
        matter = None
        if code is not None:  # routing reads no keywords
            matter = CatalogMatter(
                code, name, urgency, functional_only, period, anonymous, (), active
            )
        u = values[len(_MATTER) :]
        unit = None if u[0] is None else Unit(u[0], u[1], Level(u[2]), u[3], u[4], u[5], u[6], u[7])
        decision = None if unit is None else route(matter, unit, names_any_unit=True)
        found = _CATALOG_SEEN[values] = (matter, decision)
    return found


@traced
async def on_registered(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    """Tickets whose matter and district the catalog gives a unit are dispatched together;
    the others (determination, suggestion, manual queue) take the one-by-one way."""
    events = parse_payloads(batch, TicketRegistered)
    conn = uow.conn
    routings = await _routings(conn, events)
    now = ctx.clock.now()
    deadlines: dict[str, Any] = {}  # the run's acceptance deadline by urgency (one ``now``)
    rows: list[dict[str, Any]] = []
    elsewhere: list[tuple[TicketRegistered, datetime | None]] = []
    for event in events:
        matter, decision, flagged, early = routings[event.ticket_id]
        if decision is None or decision.unit_id is None:
            elsewhere.append((event, early))
            continue
        if event.urgency not in deadlines:
            deadlines[event.urgency] = await fallback_acceptance_deadline(ctx, event.urgency, now)
        rows.append(
            assignment_row(
                event,
                decision,
                matter,
                flagged=event.flagged or flagged,
                now=now,
                acceptance_deadline=deadlines[event.urgency],
                dispatch_deadline=early,
            )
        )
    if inserts_all_or_none(conn, uow.new_facts):  # or a key refuses the batch
        await insert_new(conn, assignments, rows, all_new=True)
        new = rows
    else:  # a registration re-sent under another event id opens nothing
        written = await insert_new(conn, assignments, rows, assignments.c.ticket_id)
        opened = {r.ticket_id for r in written}
        new = [row for row in rows if row["ticket_id"] in opened]
    # each ticket's event carries its own trace id (a run holds one event a ticket)
    traces = {e.key: e.trace_id for e in batch}
    if new:  # each dispatched now (the rows' ``dispatched_at``): made as a run
        uow.emit(
            *dispatched_run(
                new, occurred_at=now, trace_ids=[traces[row["ticket_id"]] for row in new]
            )
        )
    for event, early in elsewhere:
        # what it emits about the ticket carries the ticket's trace id (``traced``)
        token = trace_id_var.set(traces.get(event.ticket_id, trace_id_var.get()))
        try:
            await register(ctx, uow, event, early)
        finally:
            trace_id_var.reset(token)


# a run's deadlines as the update reads them (``given_rows``: the round, often a deadline,
# alike in the whole run, sent as one value)
_DEADLINE_ROW = {
    "ticket_id": String(32),
    "round": Integer(),
    "started_at": UTCDateTime(),
    "deadline": UTCDateTime(),
}
# the clock whose start a deadline's must not precede (less the tolerance) to count
_STARTED = {"acceptance": assignments.c.dispatched_at, "completion": assignments.c.accepted_at}


@cache
def _deadline_update(clock: str) -> Any:
    """``deadline_values`` in one UPDATE for a run's deadlines of one clock (PostgreSQL):
    the row's deadline is set where the work order is in the deadline's round and, but for
    the dispatch clock, its clock started no later than the deadline's (less the
    tolerance), by the rows ``ticket_id``, ``round``, ``started_at`` and ``deadline``."""
    v = given_rows(_DEADLINE_ROW)
    where = [assignments.c.ticket_id == v["ticket_id"], assignments.c.round == v["round"]]
    values: dict[str, Any] = {DEADLINE_COLUMNS[clock]: v["deadline"]}
    if clock in _STARTED:
        where.append(v["started_at"] >= _STARTED[clock] - literal(CLOCK_TOLERANCE, Interval()))
        values["deadline_source"] = "sla"
    stmt = update(assignments).where(*where).values(values)  # no rows back: none is read
    if clock == "dispatch":
        stmt = stmt.add_cte(_keep_early_cte())
    return stmt


def _keep_early_cte() -> Any:
    """``keep_early`` as a data-modifying CTE of the dispatch deadlines' update (the same
    rows, sent once): the deadlines of tickets with no work order yet (``is_early``) wait
    for their registration, a later one replacing an earlier."""
    v = given_rows({c: _DEADLINE_ROW[c] for c in ("ticket_id", "round", "deadline")})
    early = early_dispatch_deadlines
    no_work_order = ~exists().where(assignments.c.ticket_id == v["ticket_id"])
    keep = postgresql.insert(early).from_select(list(v), select(*v.values()).where(no_work_order))
    keep = keep.on_conflict_do_update(
        index_elements=[early.c.ticket_id, early.c.round], set_={"deadline": keep.excluded.deadline}
    )
    return keep.cte("kept")


async def on_deadline_set(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Header]) -> None:
    events = parse_payloads(batch, DeadlineSet)
    if uow.conn.dialect.name == "postgresql":  # no read: the update holds the condition
        by_clock: dict[str, list[DeadlineSet]] = {}
        for event in events:
            by_clock.setdefault(event.clock, []).append(event)
        for clock, run in by_clock.items():
            given: dict[str, list[Any]] = {
                "ticket_id": [e.ticket_id for e in run],
                "round": [e.round for e in run],
                "started_at": [e.started_at for e in run],
                "deadline": [e.deadline for e in run],
            }
            await fetch_rows(uow.conn, _deadline_update(clock), given_values(given))
        return
    wanted = {e.ticket_id for e in events}
    current = {
        r.ticket_id: r
        for r in await rows_in(uow.conn, DEADLINE_READ, assignments.c.ticket_id, wanted)
    }
    changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    early: list[DeadlineSet] = []
    for event in events:
        if is_early(event, current.get(event.ticket_id)):
            early.append(event)
            continue
        values = deadline_values(event, current.get(event.ticket_id))
        if values is not None:
            changes.setdefault(tuple(values), []).append({"ticket_id": event.ticket_id, **values})
    for rows in changes.values():  # one statement per set of columns (clock kind)
        await update_many(uow.conn, assignments, ["ticket_id"], rows)
    if early:
        await keep_early(uow, early)


MANY_HANDLERS: dict[str, ManyHandler] = {
    TicketRegistered.TYPE: on_registered,
    DeadlineSet.TYPE: on_deadline_set,
}
