"""Determinations of responsibility (职责界定, Art 8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.domain import DeterminationKind, State, check_determination
from services.dispatch.domain.determination import (
    CROSS_INDUSTRY_RULE,
    GOVSERVICE,
    Position,
    authority_party,
    check_joint,
    parties_required,
)
from services.dispatch.handlers.common import (
    PRODUCER,
    get_matter,
    get_unit,
    load_for_update,
    new_id,
    write_dispatch,
)
from services.dispatch.handlers.queries import require_industry_case, units_of_industry
from services.dispatch.models import assignments, determination_positions, determinations
from services.dispatch.schemas import (
    DeterminationCreate,
    DeterminationPublic,
    DeterminationsPublic,
    PositionCreate,
    PositionPublic,
    PositionsPublic,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden, IllegalTransition, InvalidInput
from shared.events import DeterminationMade
from shared.service import ServiceContext

# Art 8: who decides jointly (the department, the agency, an industry authority for its own
# industry), and who follows the cases besides them
PARTIES = (Role.GOVSERVICE, Role.AGENCY, Role.AUTHORITY)
READERS = (*PARTIES, Role.OPERATOR, Role.ADMIN)


async def decide(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: DeterminationCreate
) -> DeterminationPublic:
    """Same-industry cases: the city-level industry authority names the unit; cross-
    industry cases: the agency, jointly, names a lead and co-units. Who, when and why are
    recorded; the lead is then dispatched with its co-units and may not return it."""
    caller.require(*PARTIES)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        conn = uow.conn
        row, current = await load_for_update(uow, ticket_id, caller)
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
        if kind is DeterminationKind.CROSS_INDUSTRY:
            check_joint(await positions_of(conn, ticket_id), lead, co)
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
            ).outgoing(producer=PRODUCER, occurred_at=now)
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
    caller.require(*READERS)
    query = select(determinations)
    if status:
        query = query.where(determinations.c.status == status)
    if caller.district_scope is not None:  # Art 3: a district agency sees its district
        query = query.where(
            determinations.c.ticket_id.in_(
                select(assignments.c.ticket_id).where(
                    assignments.c.district == caller.district_scope
                )
            )
        )
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


# ---- joint determinations (Art 8, cross-industry) -----------------------------------------


def _party(caller: Caller) -> str:
    if caller.role is Role.AUTHORITY:
        industry = caller.industry
        if not industry:
            raise Forbidden("this authority is bound to no industry", rule=CROSS_INDUSTRY_RULE)
        return authority_party(industry)
    return caller.role.value


async def positions_of(conn: AsyncConnection, ticket_id: str) -> dict[str, Position]:
    rows = await conn.execute(
        select(determination_positions).where(determination_positions.c.ticket_id == ticket_id)
    )
    return {r.party: Position(r.party, r.lead_unit_id, tuple(r.co_unit_ids)) for r in rows}


async def record_position(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: PositionCreate
) -> PositionsPublic:
    """市政务服务部门、热线工作机构会同相关市级行业主管部门共同研究 (Art 8): each party
    records its position on a disputed ticket; the decision follows the department's."""
    caller.require(*PARTIES)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        if current.state is not State.PENDING_DETERMINATION:
            raise IllegalTransition(
                f"ticket {ticket_id} is {current.state.value}, not awaiting a determination",
                rule=CROSS_INDUSTRY_RULE,
            )
        await get_unit(uow.conn, body.lead_unit_id, field="lead_unit_id")
        for unit_id in body.co_unit_ids:
            await get_unit(uow.conn, unit_id, field="co_unit_ids")
        party = _party(caller)
        await uow.conn.execute(
            delete(determination_positions).where(
                determination_positions.c.ticket_id == ticket_id,
                determination_positions.c.party == party,
            )
        )
        await uow.conn.execute(
            insert(determination_positions).values(
                ticket_id=ticket_id,
                party=party,
                role=caller.role.value,
                lead_unit_id=body.lead_unit_id,
                co_unit_ids=list(dict.fromkeys(body.co_unit_ids)),
                opinion=body.opinion,
                recorded_by=caller.sub,
                recorded_at=now,
            )
        )
    return await list_positions(ctx, caller, ticket_id)


async def list_positions(ctx: ServiceContext, caller: Caller, ticket_id: str) -> PositionsPublic:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        district = await conn.scalar(
            select(assignments.c.district).where(assignments.c.ticket_id == ticket_id)
        )
        caller.require_district(district)
        if caller.role is Role.AUTHORITY:  # a party to the case, or its industry's case
            heard = await conn.scalar(
                select(determination_positions.c.party).where(
                    determination_positions.c.ticket_id == ticket_id,
                    determination_positions.c.party == _party(caller),
                )
            )
            if heard is None:
                unit_id = await conn.scalar(
                    select(assignments.c.unit_id).where(assignments.c.ticket_id == ticket_id)
                )
                await require_industry_case(conn, caller, ticket_id, unit_id)
        rows = (
            await conn.execute(
                select(determination_positions)
                .where(determination_positions.c.ticket_id == ticket_id)
                .order_by(determination_positions.c.recorded_at)
            )
        ).all()
        department = next((r for r in rows if r.party == GOVSERVICE), None)
        missing: list[str] = [] if department is not None else [GOVSERVICE]
        if department is not None:
            units = [
                await get_unit(conn, u) for u in (department.lead_unit_id, *department.co_unit_ids)
            ]
            heard = {r.party for r in rows}
            missing = [p for p in parties_required(units) if p not in heard]
    data = [PositionPublic.model_validate(dict(r._mapping)) for r in rows]
    return PositionsPublic(data=data, count=len(data), missing=missing)
