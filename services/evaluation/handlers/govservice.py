"""The city government-services department's duties in evaluation (市政务服务部门, Art 3):
it builds the team of social supervisors (Art 22) and signs off each period's unit
evaluation that it organises the agency to make (Art 23)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from services.evaluation.handlers.common import reporting_period, row_dict
from services.evaluation.handlers.scores import unit_scores
from services.evaluation.models import score_signoffs, social_supervisors
from services.evaluation.schemas import (
    ScoreSignoffCreate,
    ScoreSignoffPublic,
    ScoreSignoffsPublic,
    SocialSupervisorCreate,
    SocialSupervisorPublic,
    SocialSupervisorsPublic,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from shared.service import ServiceContext

SIGNOFF_RULE = "Art 23: the government-services department signs off each period's evaluation"
ROSTER_RULE = "Art 22: the government-services department builds the social supervisor team"


# ---- Art 23: sign-off ---------------------------------------------------------------------


async def sign_off(
    ctx: ServiceContext, caller: Caller, data: ScoreSignoffCreate
) -> ScoreSignoffPublic:
    """The ranking of a closed period, as computed now, is frozen with who signed and when;
    a period is signed once."""
    caller.require(Role.GOVSERVICE)
    now = ctx.clock.now()
    _, first, last = reporting_period(
        data.period_from, data.period_to, now, ("period_from", "period_to")
    )
    if last >= reporting_period(None, None, now)[2]:
        raise InvalidInput(
            "period_to", "a period is signed off after it has ended", rule=SIGNOFF_RULE
        )
    ranking = await unit_scores(ctx, caller, start=first, end=last, unit_id=None, explain=False)
    row = {
        "period_from": first,
        "period_to": last,
        "ranking": [r.model_dump(mode="json") for r in ranking.data],
        "weights": ranking.weights,
        "note": data.note,
        "signed_by": caller.sub,
        "signed_at": now,
    }
    try:
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(insert(score_signoffs).values(row))
    except IntegrityError:
        raise IllegalTransition(
            f"the evaluation of {first}–{last} is already signed off", rule=SIGNOFF_RULE
        ) from None
    return ScoreSignoffPublic.model_validate(row)


async def list_signoffs(ctx: ServiceContext, caller: Caller) -> ScoreSignoffsPublic:
    caller.require(Role.GOVSERVICE, Role.AGENCY, Role.ADMIN)
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(score_signoffs).order_by(score_signoffs.c.period_from))
        ).all()
    data = [ScoreSignoffPublic.model_validate(row_dict(r)) for r in rows]
    return ScoreSignoffsPublic(data=data, count=len(data))


# ---- Art 22: the social supervisor team ---------------------------------------------------


async def appoint_supervisor(
    ctx: ServiceContext, caller: Caller, data: SocialSupervisorCreate
) -> SocialSupervisorPublic:
    caller.require(Role.GOVSERVICE)
    row = {
        **data.model_dump(),
        "active": True,
        "appointed_by": caller.sub,
        "appointed_at": ctx.clock.now(),
    }
    try:
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(insert(social_supervisors).values(row))
    except IntegrityError:
        raise IllegalTransition(
            f"{data.username} is already on the team", rule=ROSTER_RULE
        ) from None
    return SocialSupervisorPublic.model_validate(row)


async def dismiss_supervisor(
    ctx: ServiceContext, caller: Caller, username: str
) -> SocialSupervisorPublic:
    caller.require(Role.GOVSERVICE)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        done = await uow.conn.execute(
            update(social_supervisors)
            .where(social_supervisors.c.username == username, social_supervisors.c.active)
            .values(active=False, dismissed_by=caller.sub, dismissed_at=now)
        )
        if done.rowcount != 1:
            raise NotFound(f"no active social supervisor {username}")
        row = (
            await uow.conn.execute(
                select(social_supervisors).where(social_supervisors.c.username == username)
            )
        ).one()
    return SocialSupervisorPublic.model_validate(row_dict(row))


async def list_supervisors(ctx: ServiceContext, caller: Caller) -> SocialSupervisorsPublic:
    caller.require(Role.GOVSERVICE, Role.AGENCY, Role.ADMIN)
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(social_supervisors).order_by(social_supervisors.c.username))
        ).all()
    data = [SocialSupervisorPublic.model_validate(row_dict(r)) for r in rows]
    return SocialSupervisorsPublic(data=data, count=len(data))


async def require_appointed(ctx: ServiceContext, caller: Caller) -> None:
    """Only a member of the team the department appointed speaks as a social supervisor."""
    if caller.role is not Role.SUPERVISOR:
        return
    async with ctx.db.engine.connect() as conn:
        active = await conn.scalar(
            select(social_supervisors.c.active).where(social_supervisors.c.username == caller.sub)
        )
    if not active:
        raise Forbidden(f"{caller.sub} is not an appointed social supervisor", rule=ROSTER_RULE)
