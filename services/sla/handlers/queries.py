"""Read side: a ticket's clocks, and the overdue / at-risk board."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from services.sla.domain import clock_state, lateness_seconds
from services.sla.handlers.clocks import RUNNING
from services.sla.handlers.extensions import ticket_extensions
from services.sla.handlers.state import state
from services.sla.models import clocks, tickets
from services.sla.schemas import Board, BoardEntry, ClockPublic, TicketClocks
from shared.auth import Caller, Role
from shared.errors import NotFound
from shared.service import ServiceContext

# Not the industry authority: the SLA does not know industries, so it could not keep an
# authority to its own (Art 8); it decides determinations in dispatch instead.
READERS = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT)
# when a running clock first needs attention: its warning, or its deadline if it has none
# (the expression ``ix_clocks_attention`` indexes, migration sla_0010)
ATTENTION = func.coalesce(clocks.c.warn_at, clocks.c.deadline)


def _state(row: Any, now: datetime) -> str:
    if row.cancelled_at is not None:
        return "cancelled"
    return clock_state(row.deadline, row.stopped_at, now).value


async def ticket_clocks(ctx: ServiceContext, caller: Caller, ticket_id: str) -> TicketClocks:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        ticket = (
            await conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))
        ).first()
        if ticket is None:
            raise NotFound(f"no clocks for ticket {ticket_id}")
        caller.require_unit(ticket.unit_id)
        caller.require_district(ticket.district)
        rows = (
            await conn.execute(
                select(clocks).where(clocks.c.ticket_id == ticket_id).order_by(clocks.c.id)
            )
        ).all()
    now = ctx.clock.now()
    return TicketClocks(
        ticket_id=ticket_id,
        clocks=[
            ClockPublic.model_validate(
                {
                    **row._mapping,
                    "state": _state(row, now),
                    "late_seconds": lateness_seconds(row.deadline, row.stopped_at, now),
                }
            )
            for row in rows
        ],
        extensions=await ticket_extensions(ctx, ticket_id),
    )


async def board(
    ctx: ServiceContext,
    caller: Caller,
    *,
    status: str,
    unit_id: str | None,
    district: str | None,
    urgency: str | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> Board:
    """Running clocks that are overdue (deadline passed) or at risk (warned, not yet
    overdue), soonest deadline first. A unit sees only its own."""
    caller.require(*READERS)
    if caller.role is Role.UNIT:
        unit_id = caller.unit_id
    if caller.district_scope is not None:  # Art 3: a district agency sees its district
        if district and district != caller.district_scope:
            caller.require_district(district)
        district = caller.district_scope
    now = ctx.clock.now()
    # warned or overdue: a range of ``ix_clocks_attention`` (a warning never comes after
    # the deadline), then filtered by the deadline for one of the two
    query = select(clocks).where(*RUNNING, ATTENTION <= now)
    if status == "overdue":
        query = query.where(clocks.c.deadline <= now)
    elif status == "at_risk":
        query = query.where(clocks.c.deadline > now)
    for column, value in (
        (clocks.c.unit_id, unit_id),
        (clocks.c.district, district),
        (clocks.c.urgency, urgency),
        (clocks.c.kind, kind),
    ):
        if value:
            query = query.where(column == value)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(clocks.c.deadline, clocks.c.id).limit(limit).offset(offset)
            )
        ).all()
    return Board(
        data=[
            BoardEntry.model_validate(
                {
                    **row._mapping,
                    "state": "overdue" if row.deadline <= now else "at_risk",
                    "late_seconds": lateness_seconds(row.deadline, None, now),
                }
            )
            for row in rows
        ],
        count=count or 0,
    )


async def calendar_readiness(ctx: ServiceContext) -> dict[str, Any]:
    """Years near now without official calendar data: deadlines there are provisional.
    Reported, not fatal: a deadline is never refused for want of a calendar."""
    year = ctx.clock.now().year
    return {"calendar_missing_years": state(ctx).calendar.missing_years([year, year + 1])}
