"""回访 and 再次办理 (Art 14): recording ratings, the agency's decision on a first
dissatisfied rating, and the revisit lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import (
    Decision,
    ExemptionState,
    RevisitState,
    check_can_decide,
    check_can_rate,
    state_after_rating,
)
from services.evaluation.handlers.common import (
    PRODUCER,
    of_district,
    require_ticket_district,
    row_dict,
    scoped_unit,
)
from services.evaluation.models import exemptions, extensions, revisits, tickets
from services.evaluation.schemas import (
    ExemptionBrief,
    ExtensionExplained,
    RevisitDecision,
    RevisitPublic,
    RevisitRecord,
    RevisitsPublic,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.errors import IllegalTransition, NotFound
from shared.events import EvaluationClosed, RehandleRequested, RevisitRecorded
from shared.service import ServiceContext

READERS = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT)


async def latest_revisit(conn: AsyncConnection, ticket_id: str) -> Row[Any]:
    row = (
        await conn.execute(
            select(revisits)
            .where(revisits.c.ticket_id == ticket_id)
            .order_by(revisits.c.round.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise NotFound(f"no revisit for ticket {ticket_id}: it has not been completed")
    return row


def _closed(row: Any, now: datetime, *, outcome: str, reason: str | None = None) -> Any:
    return EvaluationClosed(
        ticket_id=row.ticket_id,
        round=row.round,
        unit_id=row.unit_id,
        outcome=outcome,  # type: ignore[arg-type]
        rating=row.rating,
        resolved=row.resolved,
        reason=reason,
        closed_at=now,
    ).outgoing(producer=PRODUCER, occurred_at=now)


async def _transition(
    uow: UnitOfWork, row: Any, expected: RevisitState, values: dict[str, Any]
) -> Any:
    """Move one revisit on, only from the state it was read in (a concurrent change wins
    once, the other gets 409); returns the updated row."""
    done = await uow.conn.execute(
        update(revisits)
        .where(
            revisits.c.ticket_id == row.ticket_id,
            revisits.c.round == row.round,
            revisits.c.state == expected.value,
        )
        .values(values)
    )
    if done.rowcount != 1:
        raise IllegalTransition(f"the revisit of ticket {row.ticket_id} changed meanwhile")
    return (
        await uow.conn.execute(
            select(revisits).where(
                revisits.c.ticket_id == row.ticket_id, revisits.c.round == row.round
            )
        )
    ).one()


async def record_revisit(
    ctx: ServiceContext, caller: Caller, ticket_id: str, data: RevisitRecord
) -> RevisitPublic:
    caller.require(Role.OPERATOR, Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await require_ticket_district(uow.conn, caller, ticket_id)
        row = await latest_revisit(uow.conn, ticket_id)
        check_can_rate(ticket_id, RevisitState(row.state))
        after = state_after_rating(row.round, data.rating)
        row = await _transition(
            uow,
            row,
            RevisitState.OPEN,
            {
                "state": after.value,
                "rating": data.rating.value,
                "resolved": data.resolved,
                "note": data.note,
                "recorded_at": now,
                "recorded_by": caller.sub,
                "closed_at": now if after is RevisitState.CLOSED else None,
            },
        )
        uow.emit(
            RevisitRecorded(
                ticket_id=ticket_id,
                rating=data.rating.value,
                resolved=data.resolved,
                recorded_at=now,
                round=row.round,
                unit_id=row.unit_id,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
        if after is RevisitState.CLOSED:
            uow.emit(_closed(row, now, outcome="rated"))
            await _set_ticket_state(uow, ticket_id, "closed", now)
    return await get_revisit(ctx, caller, ticket_id)


async def decide(
    ctx: ServiceContext, caller: Caller, ticket_id: str, data: RevisitDecision
) -> RevisitPublic:
    """Art 14: after a first dissatisfied rating the agency sends the ticket back for
    re-handling (once) or closes it with a reason."""
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await require_ticket_district(uow.conn, caller, ticket_id)
        row = await latest_revisit(uow.conn, ticket_id)
        check_can_decide(ticket_id, row.round, RevisitState(row.state))
        sending_back = data.decision is Decision.SEND_BACK
        row = await _transition(
            uow,
            row,
            RevisitState.AWAITING_DECISION,
            {
                "state": (RevisitState.SENT_BACK if sending_back else RevisitState.CLOSED).value,
                "decision": data.decision.value,
                "decision_reason": data.reason,
                "decided_by": caller.sub,
                "decided_at": now,
                "closed_at": None if sending_back else now,
            },
        )
        if sending_back:
            uow.emit(
                RehandleRequested(
                    ticket_id=ticket_id,
                    unit_id=row.unit_id,
                    requested_by=caller.sub,
                    requested_at=now,
                    reason=data.reason,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
            await _set_ticket_state(uow, ticket_id, "rehandling", now)
        else:
            uow.emit(_closed(row, now, outcome="closed_by_agency", reason=data.reason))
            await _set_ticket_state(uow, ticket_id, "closed", now)
    return await get_revisit(ctx, caller, ticket_id)


async def _set_ticket_state(uow: UnitOfWork, ticket_id: str, state: str, at: datetime) -> None:
    await uow.conn.execute(
        update(tickets).where(tickets.c.ticket_id == ticket_id).values(state=state, updated_at=at)
    )


# ---- queries --------------------------------------------------------------------------------


def _public(row: Any, now: datetime) -> RevisitPublic:
    data = row_dict(row)
    exemption_id = data.pop("exemption_id", None)
    exemption_state = data.pop("exemption_state", None)
    exemption_reason = data.pop("exemption_reason", None)
    exemption = (
        ExemptionBrief(
            exemption_id=exemption_id,
            state=ExemptionState(exemption_state),
            decision_reason=exemption_reason,
        )
        if exemption_id
        else None
    )
    # Art 24: a final rating counts in the unit's satisfaction rate unless exempted
    counted: bool | None = None
    if row.state == RevisitState.CLOSED.value and row.rating is not None:
        counted = not (exemption is not None and exemption.state is ExemptionState.ACCEPTED)
    return RevisitPublic(
        **data,
        overdue=row.state == RevisitState.OPEN.value
        and row.due_at is not None
        and row.due_at < now,
        exemption=exemption,
        counted_in_satisfaction=counted,
    )


def _with_exemption() -> Any:
    return select(
        revisits,
        exemptions.c.exemption_id,
        exemptions.c.state.label("exemption_state"),
        exemptions.c.decision_reason.label("exemption_reason"),
    ).select_from(
        revisits.outerjoin(
            exemptions,
            and_(
                exemptions.c.ticket_id == revisits.c.ticket_id,
                exemptions.c.round == revisits.c.round,
            ),
        )
    )


async def get_revisit(ctx: ServiceContext, caller: Caller, ticket_id: str) -> RevisitPublic:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        await require_ticket_district(conn, caller, ticket_id)
        row = (
            await conn.execute(
                _with_exemption()
                .where(revisits.c.ticket_id == ticket_id)
                .order_by(revisits.c.round.desc())
                .limit(1)
            )
        ).first()
        explained = (
            await conn.execute(
                select(extensions)
                .where(extensions.c.ticket_id == ticket_id)
                .order_by(extensions.c.approved_at)
            )
        ).all()
    if row is None:
        raise NotFound(f"no revisit for ticket {ticket_id}: it has not been completed")
    caller.require_unit(row.unit_id)
    public = _public(row, ctx.clock.now())
    public.extensions = [ExtensionExplained.model_validate(dict(e._mapping)) for e in explained]
    return public


async def list_revisits(
    ctx: ServiceContext,
    caller: Caller,
    *,
    state: RevisitState | None,
    overdue: bool | None,
    unit_id: str | None,
    limit: int,
    offset: int,
) -> RevisitsPublic:
    """Revisits, the most urgent first; ``overdue=true``: open ones past their due time."""
    caller.require(*READERS)
    unit = scoped_unit(caller, unit_id)
    now = ctx.clock.now()
    query = _with_exemption()
    if state is not None:
        query = query.where(revisits.c.state == state.value)
    if unit is not None:
        query = query.where(revisits.c.unit_id == unit)
    district = of_district(caller, revisits.c.ticket_id)
    if district is not None:  # Art 3: a district agency's revisit queue
        query = query.where(district)
    if overdue is True:
        query = query.where(revisits.c.state == RevisitState.OPEN.value, revisits.c.due_at < now)
    elif overdue is False:
        query = query.where(
            (revisits.c.state != RevisitState.OPEN.value) | (revisits.c.due_at >= now)
        )
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(revisits.c.due_at, revisits.c.ticket_id).limit(limit).offset(offset)
            )
        ).all()
    return RevisitsPublic(data=[_public(r, now) for r in rows], count=count or 0)
