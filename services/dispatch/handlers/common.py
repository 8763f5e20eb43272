"""What every dispatch handler shares: row ↔ domain, loading under lock, saving with a
state check, the policy in force, and the one way a ticket is dispatched."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from services.dispatch.domain import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    Assignment,
    CatalogMatter,
    Level,
    Policy,
    State,
    Unit,
)
from services.dispatch.models import assignments, co_units, matters, policy_versions, units
from shared.auth import Caller, Role
from shared.calendar import WorkingCalendar
from shared.db import UnitOfWork
from shared.errors import IllegalTransition, InvalidInput, NotFound
from shared.events import TicketDispatched
from shared.policy import PolicyVersions
from shared.service import ServiceContext

PRODUCER = "dispatch"
POLICY_TTL_SECONDS = 30.0  # other instances' policy changes are seen within this


def unit_from_row(row: Any) -> Unit:
    return Unit(
        row.unit_id,
        row.name,
        Level(row.level),
        row.functional,
        row.industry,
        row.district,
        row.parent_id,
        row.active,
    )


def matter_from_row(row: Any) -> CatalogMatter:
    return CatalogMatter(
        row.code,
        row.name,
        row.default_urgency,
        row.functional_only,
        row.statutory_period,
        row.anonymous_allowed,
        tuple(row.keywords or ()),
        row.active,
    )


async def co_unit_ids_of(conn: Any, ticket_id: str) -> tuple[str, ...]:
    rows = await conn.execute(
        select(co_units.c.unit_id)
        .where(co_units.c.ticket_id == ticket_id)
        .order_by(co_units.c.unit_id)
    )
    return tuple(r.unit_id for r in rows)


def assignment_from_row(row: Any, co: Sequence[str] = ()) -> Assignment:
    return Assignment(
        row.ticket_id,
        State(row.state),
        row.unit_id,
        row.round,
        row.dispatched_at,
        row.accepted_at,
        row.completed_at,
        row.dispatch_no,
        tuple(co),
        row.determined,
    )


async def load_for_update(
    uow: UnitOfWork, ticket_id: str, caller: Caller | None = None
) -> tuple[Any, Assignment]:
    """The assignment, locked; with ``caller``, a district work agency is held to its
    district (Art 3)."""
    query = select(assignments).where(assignments.c.ticket_id == ticket_id)
    if uow.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await uow.conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id} in dispatch")
    if caller is not None:
        caller.require_district(row.district)
    return row, assignment_from_row(row, await co_unit_ids_of(uow.conn, ticket_id))


async def save(
    uow: UnitOfWork, old_state: str, new: Assignment, values: Mapping[str, Any] | None = None
) -> None:
    """Write the new state only if nobody changed it meanwhile (SQLite has no row locks)."""
    result = await uow.conn.execute(
        update(assignments)
        .where(assignments.c.ticket_id == new.ticket_id, assignments.c.state == old_state)
        .values(
            state=new.state,
            unit_id=new.unit_id,
            round=new.round,
            dispatch_no=new.dispatch_no,
            determined=new.determined,
            dispatched_at=new.dispatched_at,
            accepted_at=new.accepted_at,
            completed_at=new.completed_at,
            **(values or {}),
        )
    )
    if result.rowcount != 1:
        raise IllegalTransition(
            f"ticket {new.ticket_id} changed meanwhile; try again", rule="concurrent change"
        )


def new_id(result: Any) -> int:
    """The primary key an INSERT just generated."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def acting_unit(caller: Caller) -> str | None:
    caller.require(Role.UNIT)
    return caller.unit_id


# ---- policy and deadlines -------------------------------------------------------------

_CALENDAR: WorkingCalendar | None = None


def calendar() -> WorkingCalendar:
    global _CALENDAR
    if _CALENDAR is None:
        _CALENDAR = WorkingCalendar()
    return _CALENDAR


async def policy_versions_cached(
    ctx: ServiceContext, *, refresh: bool = False
) -> PolicyVersions[Policy]:
    cached = ctx.extras.get("dispatch_policy")
    if cached is not None and not refresh and time.monotonic() - cached[0] < POLICY_TTL_SECONDS:
        versions: PolicyVersions[Policy] = cached[1]
        return versions
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(select(policy_versions))).all()
    versions = PolicyVersions(
        (Policy(r.effective_from, r.settings) for r in rows),
        default=Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY),
    )
    ctx.extras["dispatch_policy"] = (time.monotonic(), versions)
    return versions


async def policy(ctx: ServiceContext, at: datetime) -> Policy:
    return (await policy_versions_cached(ctx)).in_force(at)


async def fallback_acceptance_deadline(ctx: ServiceContext, urgency: str, start: datetime) -> Any:
    """Art 9 period from the policy setting, until the SLA publishes its own deadline."""
    p = await policy(ctx, start)
    return calendar().add(start, p.acceptance_period(urgency)).at


async def fallback_completion_deadline(
    ctx: ServiceContext, urgency: str, statutory_period: str | None, start: datetime
) -> Any:
    p = await policy(ctx, start)
    return calendar().add(start, p.completion_period(urgency, statutory_period)).at


# ---- reading the catalog --------------------------------------------------------------


async def get_unit(conn: Any, unit_id: str, *, field: str = "unit_id") -> Unit:
    row = (await conn.execute(select(units).where(units.c.unit_id == unit_id))).first()
    if row is None:
        raise InvalidInput(field, f"unknown unit {unit_id}")
    return unit_from_row(row)


async def get_matter(conn: Any, code: str) -> CatalogMatter | None:
    row = (await conn.execute(select(matters).where(matters.c.code == code))).first()
    return matter_from_row(row) if row else None


# ---- the one way a ticket is dispatched -----------------------------------------------


async def write_dispatch(
    ctx: ServiceContext,
    uow: UnitOfWork,
    row: Any,
    old: Assignment,
    new: Assignment,
    *,
    matter_code: str | None = None,
    statutory_period: str | None = None,
    note: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Save a dispatch (first, re-dispatch, determination or re-handling round), record the
    co-units and emit ``ticket.dispatched``; the acceptance clock starts from it."""
    assert new.unit_id is not None and new.dispatched_at is not None
    code = matter_code or row.matter_code
    period = statutory_period if matter_code else row.statutory_period
    deadline = await fallback_acceptance_deadline(ctx, row.urgency, new.dispatched_at)
    await save(
        uow,
        old.state,
        new,
        {
            "matter_code": code,
            "statutory_period": period,
            "acceptance_deadline": deadline,
            "completion_deadline": None,
            "deadline_source": "policy",
            "note": note,
            # Art 4: the staff member stays only while the same unit holds the ticket
            "assignee": row.assignee if row.unit_id == new.unit_id else None,
            **(extra or {}),
        },
    )
    await uow.conn.execute(delete(co_units).where(co_units.c.ticket_id == new.ticket_id))
    if new.co_unit_ids:
        await uow.conn.execute(
            insert(co_units), [{"ticket_id": new.ticket_id, "unit_id": u} for u in new.co_unit_ids]
        )
    uow.emit(
        TicketDispatched(
            ticket_id=new.ticket_id,
            unit_id=new.unit_id,
            matter_code=code,
            district=row.district,
            type=row.type,
            urgency=row.urgency,
            dispatched_at=new.dispatched_at,
            round=new.round,
            statutory_period=period,
            dispatch_no=new.dispatch_no,
            co_unit_ids=list(new.co_unit_ids),
        ).outgoing(producer=PRODUCER, occurred_at=ctx.clock.now())
    )
