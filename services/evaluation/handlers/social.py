"""Social supervisors (社会监督员, Art 22): anonymised statistics to read, opinions to
submit, which the agency lists and answers."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import SupervisionState
from services.evaluation.handlers.common import new_id, reporting_period, row_dict
from services.evaluation.handlers.govservice import require_appointed
from services.evaluation.handlers.scores import compute_rates
from services.evaluation.handlers.supervision import supervisions_of_district
from services.evaluation.models import hotspots, opinions, supervisions, tickets
from services.evaluation.schemas import (
    CountRow,
    OpinionAnswer,
    OpinionCreate,
    OpinionPublic,
    OpinionsPublic,
    PublicStatistics,
)
from shared.auth import Caller, Role
from shared.errors import IllegalTransition, NotFound
from shared.service import ServiceContext

STATISTICS_READERS = (Role.SUPERVISOR, Role.AGENCY, Role.GOVSERVICE, Role.ADMIN)


async def _counts(conn: AsyncConnection, column: Any, where: Any) -> list[CountRow]:
    rows = (
        await conn.execute(
            select(column, func.count()).where(where).group_by(column).order_by(column)
        )
    ).all()
    return [CountRow(key=str(key), count=n) for key, n in rows]


async def public_statistics(
    ctx: ServiceContext, caller: Caller, *, start: date | None, end: date | None
) -> PublicStatistics:
    """Counts and rates only. The read models hold no requester name, phone or address,
    and no ticket content, so nothing personal can leak from here (Art 28)."""
    caller.require(*STATISTICS_READERS)
    await require_appointed(ctx, caller)
    now = ctx.clock.now()
    period, first, last = reporting_period(start, end, now)
    district = caller.district_scope  # Art 3: a district agency's statistics
    registered = and_(tickets.c.registered_at >= period.start, tickets.c.registered_at < period.end)
    hot = hotspots.c.active_until > now
    open_ = supervisions.c.state == SupervisionState.OPEN.value
    if district is not None:
        registered = and_(registered, tickets.c.district == district)
        hot = and_(hot, hotspots.c.district == district)
        open_ = and_(open_, supervisions_of_district(district))
    async with ctx.db.engine.connect() as conn:
        total = await conn.scalar(select(func.count()).where(registered)) or 0
        by_type = await _counts(conn, tickets.c.type, registered)
        by_district = await _counts(conn, tickets.c.district, registered)
        by_matter = await _counts(conn, tickets.c.matter_code, registered)
        active = await conn.scalar(select(func.count()).where(hot))
        open_supervisions = await conn.scalar(select(func.count()).where(open_))
    unit_rates = await compute_rates(
        ctx, by="unit", start=first, end=last, explain=False, district=district
    )
    return PublicStatistics(
        period_from=first,
        period_to=last,
        tickets_registered=total,
        by_type=by_type,
        by_district=by_district,
        by_matter=by_matter,
        units=unit_rates.data,
        active_hotspots=active or 0,
        open_supervisions=open_supervisions or 0,
    )


async def submit_opinion(ctx: ServiceContext, caller: Caller, data: OpinionCreate) -> OpinionPublic:
    caller.require(Role.SUPERVISOR)
    await require_appointed(ctx, caller)
    opinion_id = new_id()
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            insert(opinions).values(
                opinion_id=opinion_id,
                submitted_by=caller.sub,
                subject=data.subject,
                body=data.body,
                submitted_at=ctx.clock.now(),
                state="open",
            )
        )
    return await get_opinion(ctx, caller, opinion_id)


async def answer_opinion(
    ctx: ServiceContext, caller: Caller, opinion_id: str, data: OpinionAnswer
) -> OpinionPublic:
    caller.require(Role.AGENCY, Role.GOVSERVICE)  # Art 22: 听取意见建议
    async with ctx.db.unit_of_work() as uow:
        done = await uow.conn.execute(
            update(opinions)
            .where(opinions.c.opinion_id == opinion_id, opinions.c.state == "open")
            .values(
                state="answered",
                answer=data.answer,
                answered_by=caller.sub,
                answered_at=ctx.clock.now(),
            )
        )
        if done.rowcount != 1:
            await _row(uow.conn, opinion_id)
            raise IllegalTransition(f"opinion {opinion_id} has already been answered")
    return await get_opinion(ctx, caller, opinion_id)


async def _row(conn: AsyncConnection, opinion_id: str) -> Any:
    row = (await conn.execute(select(opinions).where(opinions.c.opinion_id == opinion_id))).first()
    if row is None:
        raise NotFound(f"no opinion {opinion_id}")
    return row


async def get_opinion(ctx: ServiceContext, caller: Caller, opinion_id: str) -> OpinionPublic:
    caller.require(Role.SUPERVISOR, Role.AGENCY, Role.GOVSERVICE, Role.ADMIN)
    async with ctx.db.engine.connect() as conn:
        row = await _row(conn, opinion_id)
    if caller.role is Role.SUPERVISOR and row.submitted_by != caller.sub:
        raise NotFound(f"no opinion {opinion_id}")
    return OpinionPublic(**row_dict(row))


async def list_opinions(
    ctx: ServiceContext, caller: Caller, *, state: str | None, limit: int, offset: int
) -> OpinionsPublic:
    """The agency sees every opinion; a social supervisor its own."""
    caller.require(Role.SUPERVISOR, Role.AGENCY, Role.GOVSERVICE, Role.ADMIN)
    query = select(opinions)
    if caller.role is Role.SUPERVISOR:
        query = query.where(opinions.c.submitted_by == caller.sub)
    if state is not None:
        query = query.where(opinions.c.state == state)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(opinions.c.submitted_at.desc()).limit(limit).offset(offset)
            )
        ).all()
    return OpinionsPublic(data=[OpinionPublic(**row_dict(r)) for r in rows], count=count or 0)
