"""Reading assignments: one ticket in full, lists, and a unit's inbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, or_, select, union_all

from services.dispatch.domain import OPEN_STATES, OWN_TICKETS, State
from services.dispatch.handlers.common import assignment_from_row, co_unit_ids_of
from services.dispatch.models import (
    assignments,
    co_unit_inputs,
    co_units,
    determinations,
    replies,
    returns,
    units,
)
from services.dispatch.schemas import (
    AssignmentPublic,
    AssignmentsPublic,
    DeterminationPublic,
    InboxItem,
    InboxPublic,
    InputPublic,
    ReplyPublic,
    ReturnPublic,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.service import ServiceContext

READING_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT, Role.AUTHORITY)


def _joined() -> Any:
    return select(assignments, units.c.name.label("unit_name")).outerjoin(
        units, units.c.unit_id == assignments.c.unit_id
    )


def _public(row: Any, co: list[str] | None = None, **more: Any) -> AssignmentPublic:
    return AssignmentPublic.model_validate({**row._mapping, "co_unit_ids": co or [], **more})


async def get_assignment(ctx: ServiceContext, caller: Caller, ticket_id: str) -> AssignmentPublic:
    """The ticket as dispatch knows it, with its returns, determinations, co-unit input and
    replies. A unit sees it only as lead or co-unit (Art 28)."""
    caller.require(*READING_ROLES)
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(_joined().where(assignments.c.ticket_id == ticket_id))).first()
        if row is None:
            raise NotFound(f"no ticket {ticket_id} in dispatch")
        co = await co_unit_ids_of(conn, ticket_id)
        caller.require_district(row.district)
        if caller.role is Role.UNIT and not assignment_from_row(row, co).may_see(caller.unit_id):
            raise Forbidden("this ticket belongs to another unit", rule=OWN_TICKETS)
        if caller.role is Role.AUTHORITY:
            await require_industry_case(conn, caller, ticket_id, row.unit_id)

        async def rows(table: Any, order: Any) -> list[dict[str, Any]]:
            result = await conn.execute(
                select(table).where(table.c.ticket_id == ticket_id).order_by(order)
            )
            return [dict(r._mapping) for r in result]

        detail = {
            "returns": [ReturnPublic(**r) for r in await rows(returns, returns.c.id)],
            "determinations": [
                DeterminationPublic(**r) for r in await rows(determinations, determinations.c.id)
            ],
            "inputs": [InputPublic(**r) for r in await rows(co_unit_inputs, co_unit_inputs.c.id)],
            "replies": [ReplyPublic(**r) for r in await rows(replies, replies.c.round)],
        }
    return _public(row, list(co), **detail)


async def list_assignments(
    ctx: ServiceContext,
    caller: Caller,
    *,
    state: str | None,
    unit_id: str | None,
    matter_code: str | None,
    district: str | None,
    flagged: bool | None,
    limit: int,
    offset: int,
) -> AssignmentsPublic:
    """Assignments, flagged first then oldest registration first for the queues
    (pending_dispatch is the manual queue); a unit sees only its own and co-handled."""
    caller.require(*READING_ROLES)
    query = _joined()
    if caller.role is Role.UNIT:
        query = query.where(_mine(caller.unit_id))
    elif caller.role is Role.AUTHORITY:
        query = query.where(assignments.c.unit_id.in_(units_of_industry(caller.industry)))
        if unit_id:
            query = query.where(assignments.c.unit_id == unit_id)
    elif unit_id:
        query = query.where(assignments.c.unit_id == unit_id)
    if state:
        _check_state(state)
        query = query.where(assignments.c.state == state)
    if matter_code:
        query = query.where(assignments.c.matter_code == matter_code)
    scope = caller.district_scope
    if scope is not None:
        if district and district != scope:
            caller.require_district(district)
        district = scope
    if district:
        query = query.where(assignments.c.district == district)
    if flagged is not None:
        query = query.where(assignments.c.flagged == flagged)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(
                    assignments.c.flagged.desc(),
                    assignments.c.registered_at.desc(),
                    assignments.c.ticket_id,
                )
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return AssignmentsPublic(data=[_public(r) for r in rows], count=count or 0)


def _check_state(state: str) -> None:
    if state not in set(State):
        raise InvalidInput("state", f"one of {', '.join(s.value for s in State)}")


def units_of_industry(industry: str | None) -> Any:
    return select(units.c.unit_id).where(units.c.industry == industry)


async def industries_of(conn: Any, unit_ids: list[str]) -> set[str | None]:
    if not unit_ids:
        return set()
    found = await conn.execute(select(units.c.industry).where(units.c.unit_id.in_(unit_ids)))
    return set(found.scalars())


async def require_industry_case(
    conn: Any, caller: Caller, ticket_id: str, unit_id: str | None
) -> None:
    """An industry authority sees a ticket handled in its industry, or one whose pending
    determination names a unit of its industry (Art 8)."""
    candidates = [unit_id] if unit_id else []
    pending = await conn.execute(
        select(determinations.c.candidate_unit_ids).where(
            determinations.c.ticket_id == ticket_id, determinations.c.status == "pending"
        )
    )
    for listed in pending.scalars():
        candidates.extend(listed or [])
    if caller.industry not in await industries_of(conn, candidates):
        caller.require_industry(None)


def _mine(unit_id: str | None) -> Any:
    co = select(co_units.c.ticket_id).where(co_units.c.unit_id == unit_id)
    return or_(assignments.c.unit_id == unit_id, assignments.c.ticket_id.in_(co))


async def _state_counts(conn: Any, unit_id: str, district: str | None) -> dict[str, int]:
    """A unit's tickets per state, lead and co-unit: two index reads summed (an OR of the
    two would visit every ticket of the unit through a temporary row-id set)."""
    co = select(co_units.c.ticket_id).where(co_units.c.unit_id == unit_id)
    lead = assignments.c.unit_id == unit_id
    parts = (
        lead,
        and_(or_(assignments.c.unit_id.is_(None), ~lead), assignments.c.ticket_id.in_(co)),
    )
    counts: dict[str, int] = {}
    for part in parts:
        query = select(assignments.c.state, func.count().label("n")).where(part)
        if district is not None:
            query = query.where(assignments.c.district == district)
        for r in await conn.execute(query.group_by(assignments.c.state)):
            counts[r.state] = counts.get(r.state, 0) + r.n
    return counts


def _inbox_order(c: Any) -> list[Any]:
    """Flagged first, then the soonest running deadline (none last), as the index has it."""
    return [c.flagged.desc(), c.due_at.is_(None), c.due_at, c.dispatched_at, c.ticket_id]


async def inbox(
    ctx: ServiceContext,
    caller: Caller,
    *,
    unit_id: str | None,
    state: str | None,
    limit: int,
    offset: int,
    assignee: str | None = None,
) -> InboxPublic:
    """A unit's tickets, flagged first (Art 27), then the soonest deadline of the running
    clock (the SLA's), with counts per state. Read as one ordered index range per state, for
    the lead and the co-units apart (``ix_assignments_inbox``), each at most a page deep;
    the page is the first rows of their union."""
    caller.require(Role.UNIT, Role.AGENCY, Role.OPERATOR, Role.ADMIN)
    if caller.role is Role.UNIT:
        unit_id = caller.unit_id
    if not unit_id:
        raise InvalidInput("unit_id", "name the unit whose inbox to read")
    if state:
        _check_state(state)
    states = [state] if state else [s.value for s in OPEN_STATES]
    co = select(co_units.c.ticket_id).where(co_units.c.unit_id == unit_id)
    lead = assignments.c.unit_id == unit_id
    whose = (
        lead,
        and_(or_(assignments.c.unit_id.is_(None), ~lead), assignments.c.ticket_id.in_(co)),
    )
    narrower = []
    if caller.district_scope is not None:  # Art 3: a district agency sees its district
        narrower.append(assignments.c.district == caller.district_scope)
    if assignee:  # Art 4: one staff member's work orders
        narrower.append(assignments.c.assignee == assignee)
    parts = [
        select(
            select(assignments)
            .where(mine, assignments.c.state == one, *narrower)
            .order_by(*_inbox_order(assignments.c))
            .limit(offset + limit)
            .subquery()
        )
        for mine in whose
        for one in states
    ]
    found = union_all(*parts).subquery()
    due_clock = case(
        (found.c.state == State.ACCEPTED, "completion"),
        (found.c.state.in_([State.DISPATCHED, State.RETURN_REVIEW]), "acceptance"),
        else_=None,
    )
    async with ctx.db.engine.connect() as conn:
        counts = await _state_counts(conn, unit_id, caller.district_scope)
        if assignee:
            count = await conn.scalar(
                select(func.count()).where(or_(*whose), assignments.c.state.in_(states), *narrower)
            )
        else:  # the counts per state already hold it: no second pass over the unit's tickets
            count = sum(counts.get(s, 0) for s in states)
        rows = (
            await conn.execute(
                select(found, due_clock.label("due_clock"))
                .order_by(*_inbox_order(found.c))
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return InboxPublic(
        unit_id=unit_id,
        counts={
            s.value: counts.get(s.value, 0) for s in State if s.value in counts or s in OPEN_STATES
        },
        data=[
            InboxItem.model_validate(
                {**r._mapping, "role": "lead" if r.unit_id == unit_id else "co"}
            )
            for r in rows
        ],
        count=count or 0,
    )
