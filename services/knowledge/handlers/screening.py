"""Screening overrules (Art 20): an agency reviewer records that a refused word is a false
positive for one unit's texts, with the reason; screening then lets that word pass."""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.knowledge.domain import Policy, check_overrulable
from services.knowledge.models import screening_overrules
from services.knowledge.schemas import (
    ScreeningOverruleCreate,
    ScreeningOverrulePublic,
    ScreeningOverrulesPublic,
)
from shared.auth import Caller, Role
from shared.detectors import ScreeningRules
from shared.service import ServiceContext


async def rules_for(conn: AsyncConnection, policy: Policy, unit_id: str) -> ScreeningRules:
    """The policy's screening rules with the unit's overruled words let through."""
    rows = (
        await conn.execute(
            select(screening_overrules.c.kind, screening_overrules.c.word).where(
                screening_overrules.c.unit_id == unit_id
            )
        )
    ).all()
    s = policy.settings
    return ScreeningRules.of(
        s.public_contacts,
        s.classification_exempt_terms,
        s.sensitive_terms,
        [(r.kind, r.word) for r in rows],
    )


async def overrule(
    ctx: ServiceContext, caller: Caller, data: ScreeningOverruleCreate
) -> ScreeningOverrulePublic:
    caller.require(Role.AGENCY)
    check_overrulable(data.kind)
    row = {
        "overrule_id": str(uuid.uuid4()),
        **data.model_dump(mode="json"),
        "decided_by": caller.sub,
        "decided_at": ctx.clock.now(),
    }
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(insert(screening_overrules).values(row))
    return ScreeningOverrulePublic.model_validate(row)


async def list_overrules(
    ctx: ServiceContext, caller: Caller, unit_id: str | None
) -> ScreeningOverrulesPublic:
    caller.require(Role.AGENCY, Role.ADMIN, Role.UNIT)
    if caller.role is Role.UNIT:
        unit_id = caller.unit_id
    stmt = select(screening_overrules).order_by(screening_overrules.c.decided_at)
    if unit_id:
        stmt = stmt.where(screening_overrules.c.unit_id == unit_id)
    async with ctx.db.unit_of_work() as uow:
        rows = (await uow.conn.execute(stmt)).all()
    data = [ScreeningOverrulePublic.model_validate(dict(r._mapping)) for r in rows]
    return ScreeningOverrulesPublic(data=data, count=len(data))
