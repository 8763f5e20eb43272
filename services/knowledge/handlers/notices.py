"""Policy notices (Art 18): a unit announces a policy change with its publication time,
interpretation material and answer guide; less than 12 hours ahead is accepted but late,
and counts against the unit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Integer, cast, func, insert, select

from services.knowledge.domain import notice_is_late, notice_lead, owning_unit
from services.knowledge.handlers import screening
from services.knowledge.handlers.common import PRODUCER, policy_at
from services.knowledge.models import entries, policy_notices
from services.knowledge.schemas import (
    PolicyNoticeCreate,
    PolicyNoticePublic,
    PolicyNoticesPublic,
    UnitNoticeRecord,
    UnitNoticeRecords,
)
from services.knowledge.screening import refuse_findings
from shared.auth import Caller, Role
from shared.detectors import screen_fields
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import PolicyNoticeRegistered
from shared.service import ServiceContext

_NOTICE_TEXT = ("title", "summary", "interpretation", "answer_guide")


def _public(row: Any) -> PolicyNoticePublic:
    data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    data["lead_hours"] = round(data.pop("lead_seconds") / 3600, 2)
    return PolicyNoticePublic.model_validate(data)


async def register_notice(
    ctx: ServiceContext, caller: Caller, data: PolicyNoticeCreate
) -> PolicyNoticePublic:
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN)
    unit_id = owning_unit(caller, data.unit_id)
    now = ctx.clock.now()
    lead = notice_lead(now, data.publication_at)
    async with ctx.db.unit_of_work() as uow:
        policy = await policy_at(uow.conn, now)
        content = data.model_dump()
        # Art 20: interpretation material and answer guides feed the knowledge base.
        rules = await screening.rules_for(uow.conn, policy, unit_id)
        refuse_findings(screen_fields({f: content[f] for f in _NOTICE_TEXT}, rules))
        if data.entry_ids:
            found = set(
                (
                    await uow.conn.execute(
                        select(entries.c.entry_id).where(entries.c.entry_id.in_(data.entry_ids))
                    )
                ).scalars()
            )
            unknown = [e for e in data.entry_ids if e not in found]
            if unknown:
                raise InvalidInput("entry_ids", f"unknown entries: {', '.join(unknown)}")
        row = {
            **content,
            "notice_id": str(uuid.uuid4()),
            "unit_id": unit_id,
            "registered_at": now,
            "registered_by": caller.sub,
            "lead_seconds": lead.total_seconds(),
            "late": notice_is_late(lead, policy),
        }
        await uow.conn.execute(insert(policy_notices).values(row))
        notice = _public(row)
        uow.emit(
            PolicyNoticeRegistered(
                notice_id=notice.notice_id,
                unit_id=unit_id,
                title=data.title,
                publication_at=data.publication_at,
                registered_at=now,
                lead_hours=notice.lead_hours,
                late=notice.late,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return notice


def _unit_scope(caller: Caller, unit_id: str | None) -> str | None:
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN, Role.OPERATOR)
    if caller.role is Role.UNIT:
        if unit_id not in (None, caller.unit_id):
            raise Forbidden("a unit sees only its own notices")
        return caller.unit_id
    return unit_id


async def get_notice(ctx: ServiceContext, caller: Caller, notice_id: str) -> PolicyNoticePublic:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(policy_notices).where(policy_notices.c.notice_id == notice_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"no policy notice {notice_id}")
    _unit_scope(caller, row.unit_id)
    return _public(row)


async def list_notices(
    ctx: ServiceContext,
    caller: Caller,
    *,
    unit_id: str | None,
    late: bool | None,
    limit: int,
    offset: int,
) -> PolicyNoticesPublic:
    unit_id = _unit_scope(caller, unit_id)
    n = policy_notices.c
    where: list[Any] = []
    if unit_id is not None:
        where.append(n.unit_id == unit_id)
    if late is not None:
        where.append(n.late.is_(late))
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(policy_notices).where(*where))
        rows = (
            await conn.execute(
                select(policy_notices)
                .where(*where)
                .order_by(n.publication_at.desc(), n.notice_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return PolicyNoticesPublic(data=[_public(r) for r in rows], count=count or 0)


async def unit_records(
    ctx: ServiceContext, caller: Caller, unit_id: str | None
) -> UnitNoticeRecords:
    """Per unit: notices registered and how many were late (counted against it)."""
    unit_id = _unit_scope(caller, unit_id)
    n = policy_notices.c
    stmt = select(
        n.unit_id,
        func.count().label("notices"),
        func.coalesce(func.sum(cast(n.late, Integer)), 0).label("late"),
    ).group_by(n.unit_id)
    if unit_id is not None:
        stmt = stmt.where(n.unit_id == unit_id)
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(n.unit_id))).all()
    data = [UnitNoticeRecord(unit_id=r.unit_id, notices=r.notices, late=r.late) for r in rows]
    return UnitNoticeRecords(data=data, count=len(data))
