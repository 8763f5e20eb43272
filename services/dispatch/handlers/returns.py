"""Returns (退回, Art 10): the unit asks, the agency approves or rejects."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update

from services.dispatch.domain import (
    ReturnRequest,
    ReturnStatus,
    check_approvable,
    check_dispatch_target,
    check_rejection,
)
from services.dispatch.handlers.common import (
    PRODUCER,
    acting_unit,
    fallback_acceptance_deadline,
    get_matter,
    get_unit,
    load_for_update,
    new_id,
    save,
    write_dispatch,
)
from services.dispatch.handlers.tickets import dispatch_by_suggestion
from services.dispatch.models import assignments, matter_units, returns
from services.dispatch.schemas import (
    ReturnApproval,
    ReturnCreate,
    ReturnPublic,
    ReturnRejection,
    ReturnsPublic,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.errors import IllegalTransition, InvalidInput
from shared.events import ReturnApproved, ReturnRejected, ReturnRequested
from shared.service import ServiceContext


async def request_return(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: ReturnCreate
) -> ReturnPublic:
    """The assigned unit, before accepting and within the acceptance period, with a reason
    and a basis (Art 10). The acceptance deadline is the SLA's when published."""
    unit_id = acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        deadline = row.acceptance_deadline
        if deadline is None and row.dispatched_at is not None:
            deadline = await fallback_acceptance_deadline(ctx, row.urgency, row.dispatched_at)
        reviewed = current.request_return(
            by_unit=unit_id,
            at=now,
            acceptance_deadline=deadline or now,
            reason=body.reason,
            basis=body.basis,
        )
        if await uow.conn.scalar(
            select(func.count()).where(
                returns.c.ticket_id == ticket_id, returns.c.dispatch_no == row.dispatch_no
            )
        ):
            raise IllegalTransition(
                "this unit already asked to return this dispatch and was refused",
                rule="Art 10: one return request per dispatch",
            )
        await save(uow, current.state, reviewed)
        values = {
            "return_id": str(uuid.uuid4()),  # the one identifier style (as extensions etc.)
            "ticket_id": ticket_id,
            "unit_id": row.unit_id,
            "dispatch_no": row.dispatch_no,
            "reason": body.reason,
            "basis": body.basis,
            "requested_by": caller.sub,
            "requested_at": now,
            "status": ReturnStatus.PENDING,
        }
        result = await uow.conn.execute(insert(returns).values(**values))
        uow.emit(
            ReturnRequested(
                ticket_id=ticket_id,
                unit_id=row.unit_id,
                reason=body.reason,
                basis=body.basis,
                requested_at=now,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await _get(ctx, new_id(result))


async def _pending(uow: UnitOfWork, ticket_id: str) -> Any:
    row = (
        await uow.conn.execute(
            select(returns).where(
                returns.c.ticket_id == ticket_id, returns.c.status == ReturnStatus.PENDING
            )
        )
    ).first()
    if row is None:
        raise IllegalTransition(
            f"no return of ticket {ticket_id} is under review",
            rule="life cycle: return_review → dispatched | pending_dispatch",
        )
    return row


async def approve_return(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: ReturnApproval
) -> ReturnPublic:
    """Approve unless Art 10 forbids it; then back to pending_dispatch and re-dispatched:
    to the catalog's unit when another unit fits, else by a confident suggestion, else the
    manual queue. Every clock restarts from the new dispatch."""
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        request = await _pending(uow, ticket_id)
        catalog_unit = await uow.conn.scalar(
            select(matter_units.c.unit_id).where(
                matter_units.c.matter_code == row.matter_code,
                matter_units.c.district == row.district,
            )
        )
        check_approvable(
            ReturnRequest(
                ticket_id, request.unit_id, request.reason, request.basis, request.requested_at
            ),
            catalog_unit_id=catalog_unit,
            determined=current.determined,
        )
        back = current.return_approved()
        await save(
            uow,
            current.state,
            back,
            {"acceptance_deadline": None, "completion_deadline": None, "deadline_source": None},
        )
        await _decide(uow, request.id, ReturnStatus.APPROVED, caller.sub, now, body.note)
        uow.emit(
            ReturnApproved(
                ticket_id=ticket_id,
                unit_id=request.unit_id,
                decided_by=caller.sub,
                decided_at=now,
                note=body.note,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
        returned = frozenset(
            r.unit_id
            for r in await uow.conn.execute(
                select(returns.c.unit_id).where(
                    returns.c.ticket_id == ticket_id, returns.c.status == ReturnStatus.APPROVED
                )
            )
        ) | {request.unit_id}
        target = await _catalog_target(uow, row.matter_code, catalog_unit, returned)
        reason = f"return by {request.unit_id} approved"
        if target is not None:
            row, pending = await load_for_update(uow, ticket_id)
            await write_dispatch(
                ctx,
                uow,
                row,
                pending,
                pending.dispatch(target, at=now),
                note=f"{reason}; re-dispatched per catalog",
            )
        else:
            await dispatch_by_suggestion(ctx, uow, ticket_id, reason=reason, exclude_units=returned)
    return await _get(ctx, request.id)


async def _catalog_target(
    uow: UnitOfWork, matter_code: str, catalog_unit: str | None, excluded: frozenset[str]
) -> str | None:
    if catalog_unit is None or catalog_unit in excluded:
        return None
    matter = await get_matter(uow.conn, matter_code)
    unit = await get_unit(uow.conn, catalog_unit)
    if matter is None:
        return None
    try:
        check_dispatch_target(matter, unit)
    except IllegalTransition:
        return None
    return catalog_unit


async def reject_return(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: ReturnRejection
) -> ReturnPublic:
    """The unit continues; the clocks are not reset (Art 10)."""
    caller.require(Role.AGENCY)
    check_rejection(body.reason)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        request = await _pending(uow, ticket_id)
        await save(uow, current.state, current.return_rejected())
        await _decide(uow, request.id, ReturnStatus.REJECTED, caller.sub, now, body.reason)
        uow.emit(
            ReturnRejected(
                ticket_id=ticket_id,
                unit_id=request.unit_id,
                decided_by=caller.sub,
                decided_at=now,
                reason=body.reason,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await _get(ctx, request.id)


async def _decide(
    uow: UnitOfWork, return_id: int, status: ReturnStatus, by: str, at: Any, note: str | None
) -> None:
    await uow.conn.execute(
        update(returns)
        .where(returns.c.id == return_id)
        .values(status=status, decided_by=by, decided_at=at, decision_note=note)
    )


async def _get(ctx: ServiceContext, return_id: int) -> ReturnPublic:
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(select(returns).where(returns.c.id == return_id))).one()
    return ReturnPublic.model_validate(dict(row._mapping))


async def list_returns(
    ctx: ServiceContext,
    caller: Caller,
    *,
    status: str | None,
    limit: int,
    offset: int,
) -> ReturnsPublic:
    """The agency's review queue (oldest first); a unit sees its own requests."""
    caller.require(Role.AGENCY, Role.OPERATOR, Role.ADMIN, Role.UNIT)
    query = select(returns)
    if status:
        if status not in set(ReturnStatus):
            raise InvalidInput("status", "one of pending, approved, rejected")
        query = query.where(returns.c.status == status)
    if caller.role is Role.UNIT:
        query = query.where(returns.c.unit_id == caller.unit_id)
    if caller.district_scope is not None:  # Art 3: a district agency reviews its district
        query = query.where(
            returns.c.ticket_id.in_(
                select(assignments.c.ticket_id).where(
                    assignments.c.district == caller.district_scope
                )
            )
        )
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(returns.c.requested_at, returns.c.id).limit(limit).offset(offset)
            )
        ).all()
    return ReturnsPublic(
        data=[ReturnPublic.model_validate(dict(r._mapping)) for r in rows], count=count or 0
    )
