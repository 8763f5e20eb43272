"""Determinations of responsibility (职责界定, Art 8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update

from services.dispatch.domain import DeterminationKind, check_determination
from services.dispatch.handlers.common import (
    PRODUCER,
    get_matter,
    get_unit,
    load_for_update,
    new_id,
    write_dispatch,
)
from services.dispatch.handlers.queries import units_of_industry
from services.dispatch.models import assignments, determinations
from services.dispatch.schemas import (
    DeterminationCreate,
    DeterminationPublic,
    DeterminationsPublic,
)
from shared.auth import Caller, Role
from shared.errors import InvalidInput
from shared.events import DeterminationMade
from shared.service import ServiceContext


async def decide(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: DeterminationCreate
) -> DeterminationPublic:
    """Same-industry cases: the city-level industry authority names the unit; cross-
    industry cases: the agency, jointly, names a lead and co-units. Who, when and why are
    recorded; the lead is then dispatched with its co-units and may not return it."""
    caller.require(Role.AUTHORITY, Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        conn = uow.conn
        row, current = await load_for_update(uow, ticket_id)
        lead = await get_unit(conn, body.lead_unit_id, field="lead_unit_id")
        co = [await get_unit(conn, u, field="co_unit_ids") for u in dict.fromkeys(body.co_unit_ids)]
        matter = await get_matter(conn, body.matter_code or row.matter_code)
        if body.matter_code and matter is None:
            raise InvalidInput("matter_code", f"unknown matter {body.matter_code}")
        case = (
            await conn.execute(
                select(determinations).where(
                    determinations.c.ticket_id == ticket_id, determinations.c.status == "pending"
                )
            )
        ).first()
        kind = check_determination(
            matter=matter,
            lead=lead,
            co_units=co,
            decided_role=caller.role.value,
            referred_kind=DeterminationKind(case.kind) if case and case.kind else None,
            reason=body.reason,
            authority_industry=caller.industry,
        )
        dispatched = current.dispatch(
            lead.unit_id, at=now, co_unit_ids=[u.unit_id for u in co], determined=True
        )
        decision = {
            "kind": kind.value,
            "status": "decided",
            "lead_unit_id": lead.unit_id,
            "co_unit_ids": [u.unit_id for u in co],
            "decided_by": caller.sub,
            "decided_role": caller.role.value,
            "decided_at": now,
            "reason": body.reason,
        }
        if case is not None:
            await conn.execute(
                update(determinations).where(determinations.c.id == case.id).values(**decision)
            )
            case_id = case.id
        else:
            result = await conn.execute(
                insert(determinations).values(
                    ticket_id=ticket_id,
                    candidate_unit_ids=[],
                    referred_by=caller.sub,
                    referred_at=now,
                    referral_reason=row.note or "decided from the manual queue",
                    **decision,
                )
            )
            case_id = new_id(result)
        uow.emit(
            DeterminationMade(
                ticket_id=ticket_id,
                lead_unit_id=lead.unit_id,
                co_unit_ids=[u.unit_id for u in co],
                decided_by=caller.sub,
                decided_role=caller.role.value,
                decided_at=now,
                reason=body.reason,
            ).envelope(producer=PRODUCER, occurred_at=now)
        )
        await write_dispatch(
            ctx,
            uow,
            row,
            current,
            dispatched,
            matter_code=body.matter_code,
            statutory_period=matter.statutory_period if matter else None,
            note=f"determined by {caller.sub} ({caller.role.value})",
        )
    async with ctx.db.engine.connect() as conn:
        saved = (
            await conn.execute(select(determinations).where(determinations.c.id == case_id))
        ).one()
    return DeterminationPublic.model_validate(dict(saved._mapping))


async def _industry_cases(conn: Any, caller: Caller) -> list[int]:
    """The determinations an industry authority may see: those naming a unit of its
    industry, as a candidate, the ticket's unit or the decided lead (Art 8)."""
    mine = set((await conn.execute(units_of_industry(caller.industry))).scalars())
    rows = await conn.execute(
        select(
            determinations.c.id,
            determinations.c.candidate_unit_ids,
            determinations.c.lead_unit_id,
            assignments.c.unit_id,
        ).outerjoin(assignments, assignments.c.ticket_id == determinations.c.ticket_id)
    )
    return [r.id for r in rows if mine & {*(r.candidate_unit_ids or []), r.lead_unit_id, r.unit_id}]


async def list_determinations(
    ctx: ServiceContext, caller: Caller, *, status: str | None, limit: int, offset: int
) -> DeterminationsPublic:
    """The determination queue (oldest first)."""
    caller.require(Role.AUTHORITY, Role.AGENCY, Role.OPERATOR, Role.ADMIN)
    query = select(determinations)
    if status:
        query = query.where(determinations.c.status == status)
    async with ctx.db.engine.connect() as conn:
        if caller.role is Role.AUTHORITY:
            query = query.where(determinations.c.id.in_(await _industry_cases(conn, caller)))
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(determinations.c.referred_at, determinations.c.id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return DeterminationsPublic(
        data=[DeterminationPublic.model_validate(dict(r._mapping)) for r in rows],
        count=count or 0,
    )
