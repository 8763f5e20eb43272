"""Extensions (延期, Art 12): the unit requests, the agency approves or rejects."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update

from services.sla.domain import (
    ClockKind,
    ExtensionContext,
    check_explanation,
    check_extension_request,
    clock_period,
    extended_deadline,
    next_due,
)
from services.sla.handlers.clocks import PRODUCER, RUNNING
from services.sla.handlers.state import state
from services.sla.models import clocks, extensions, tickets
from services.sla.schemas import ExtensionExplanation, ExtensionPublic, ExtensionRequest
from shared.auth import Caller, Role
from shared.calendar import Period
from shared.db import UnitOfWork
from shared.errors import IllegalTransition, NotFound
from shared.events import (
    DeadlineSet,
    ExtensionApproved,
    ExtensionExplained,
    ExtensionRejected,
    ExtensionRequested,
)
from shared.service import ServiceContext


async def _lock(uow: UnitOfWork, query: Any) -> Any:
    if uow.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await uow.conn.execute(query)).first()


async def request_extension(
    ctx: ServiceContext, caller: Caller, ticket_id: str, data: ExtensionRequest
) -> ExtensionPublic:
    caller.require(Role.UNIT)
    now = ctx.clock.now()
    sla = state(ctx)
    async with ctx.db.unit_of_work() as uow:
        ticket = await _lock(uow, select(tickets).where(tickets.c.ticket_id == ticket_id))
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}")
        caller.require_unit(ticket.unit_id)
        clock = (
            await uow.conn.execute(
                select(clocks)
                .where(clocks.c.ticket_id == ticket_id, clocks.c.cancelled_at.is_(None))
                .order_by(clocks.c.round.desc(), clocks.c.id.desc())
                .limit(1)
            )
        ).first()
        if clock is None:
            raise IllegalTransition("the ticket has no clock yet", rule="Art 12: completion only")
        counts = (
            await uow.conn.execute(
                select(
                    func.count(),
                    func.count().filter(extensions.c.state == "requested"),
                ).where(extensions.c.ticket_id == ticket_id)
            )
        ).one()
        policy = sla.versions.in_force(clock.started_at)
        check_extension_request(
            ExtensionContext(
                clock_kind=clock.kind,
                urgency=ticket.urgency,
                ticket_type=ticket.type,
                round=clock.round,
                deadline=clock.deadline,
                requests_so_far=counts[0],
                pending=counts[1] > 0,
                stopped=clock.stopped_at is not None,
            ),
            now,
            sla.calendar,
            policy.settings["max_extension_requests"],
        )
        row = {
            "extension_id": str(uuid.uuid4()),
            "ticket_id": ticket_id,
            "clock_id": clock.id,
            "unit_id": ticket.unit_id,
            **data.model_dump(),
            "requested_at": now,
            "requested_by": caller.sub,
            "state": "requested",
            "old_deadline": clock.deadline,
        }
        await uow.conn.execute(insert(extensions).values(row))
        uow.emit(
            ExtensionRequested(
                ticket_id=ticket_id,
                extension_id=row["extension_id"],
                unit_id=ticket.unit_id,
                requested_at=now,
                current_deadline=clock.deadline,
                **data.model_dump(),
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await get_extension(ctx, caller, row["extension_id"])


async def decide_extension(
    ctx: ServiceContext, caller: Caller, extension_id: str, *, approve: bool, text: str
) -> ExtensionPublic:
    """The agency's review. Approval moves the deadline by the capped period and needs the
    explanation given to the requester; rejection keeps the deadline and needs a reason."""
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    sla = state(ctx)
    async with ctx.db.unit_of_work() as uow:
        ext = await _lock(uow, select(extensions).where(extensions.c.extension_id == extension_id))
        if ext is None:
            raise NotFound(f"no extension request {extension_id}")
        district = await uow.conn.scalar(
            select(tickets.c.district).where(tickets.c.ticket_id == ext.ticket_id)
        )
        caller.require_district(district)  # Art 3: a district agency decides its district's
        if ext.state != "requested":
            raise IllegalTransition(f"this extension request was already {ext.state}")
        decided: dict[str, Any] = {"decided_by": caller.sub, "decided_at": now}
        if not approve:
            await _set(uow, extension_id, state="rejected", reject_reason=text, **decided)
            uow.emit(
                ExtensionRejected(
                    ticket_id=ext.ticket_id,
                    extension_id=extension_id,
                    unit_id=ext.unit_id,
                    reason=text,
                    **decided,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
        else:
            clock = await _lock(uow, select(clocks).where(clocks.c.id == ext.clock_id, *RUNNING))
            if clock is None:
                raise IllegalTransition("the completion clock has already stopped")
            ticket = (
                await uow.conn.execute(select(tickets).where(tickets.c.ticket_id == ext.ticket_id))
            ).one()
            policy = sla.versions.in_force(clock.started_at)
            period = clock_period(
                policy, ClockKind.COMPLETION, ticket.urgency, ticket.statutory_period
            )
            cap = Period.parse(policy.settings["extension_cap"])
            new_deadline, provisional = extended_deadline(sla.calendar, clock.deadline, period, cap)
            overdue = clock.overdue_at is not None
            await uow.conn.execute(
                update(clocks)
                .where(clocks.c.id == clock.id)
                .values(
                    deadline=new_deadline,
                    provisional=provisional or clock.provisional,
                    extensions=clock.extensions + 1,
                    next_due_at=next_due(
                        deadline=new_deadline,
                        warn_at=clock.warn_at,
                        warned=clock.warned_at is not None,
                        overdue=overdue,
                        escalate_at=clock.escalate_at,
                        level=clock.escalation_level,
                        stopped=False,
                    ),
                )
            )
            await _set(
                uow,
                extension_id,
                state="approved",
                explanation_to_requester=text,
                period=str(min(period, cap, key=lambda p: sla.calendar.add(clock.deadline, p).at)),
                new_deadline=new_deadline,
                **decided,
            )
            uow.emit(
                ExtensionApproved(
                    ticket_id=ext.ticket_id,
                    extension_id=extension_id,
                    unit_id=ext.unit_id,
                    old_deadline=clock.deadline,
                    new_deadline=new_deadline,
                    explanation_to_requester=text,
                    **decided,
                ).outgoing(producer=PRODUCER, occurred_at=now),
                DeadlineSet(
                    ticket_id=ext.ticket_id,
                    clock=ClockKind.COMPLETION.value,
                    round=clock.round,
                    dispatch_no=clock.dispatch_no,
                    unit_id=clock.unit_id,
                    started_at=clock.started_at,
                    deadline=new_deadline,
                    period=clock.period,
                    provisional=provisional or clock.provisional,
                ).outgoing(producer=PRODUCER, occurred_at=now),
            )
            uow.after_commit.append(sla.wake.set)
    return await get_extension(ctx, caller, extension_id)


async def explain_extension(
    ctx: ServiceContext, caller: Caller, extension_id: str, data: ExtensionExplanation
) -> ExtensionPublic:
    """Art 12: after approval the unit (not the agency) explains the extension to the
    requester, telling progress, measures and the new deadline; recorded once."""
    caller.require(Role.UNIT)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        ext = await _lock(uow, select(extensions).where(extensions.c.extension_id == extension_id))
        if ext is None:
            raise NotFound(f"no extension request {extension_id}")
        caller.require_unit(ext.unit_id)
        check_explanation(
            state=ext.state,
            decided_at=ext.decided_at,
            already=ext.explained_at is not None,
            explained_at=data.explained_at,
            now=now,
        )
        explanation = {
            **data.model_dump(mode="json"),
            "new_deadline": ext.new_deadline.isoformat(),
            "recorded_by": caller.sub,
            "recorded_at": now.isoformat(),
        }
        await _set(
            uow,
            extension_id,
            explained_via=data.channel,
            explained_at=data.explained_at,
            explanation=explanation,
            explanation_recorded_by=caller.sub,
            explanation_recorded_at=now,
        )
        uow.emit(
            ExtensionExplained(
                ticket_id=ext.ticket_id,
                extension_id=extension_id,
                unit_id=ext.unit_id,
                new_deadline=ext.new_deadline,
                recorded_by=caller.sub,
                **data.model_dump(),
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await get_extension(ctx, caller, extension_id)


async def _set(uow: UnitOfWork, extension_id: str, **values: Any) -> None:
    await uow.conn.execute(
        update(extensions).where(extensions.c.extension_id == extension_id).values(**values)
    )


EXTENSION_READERS = (Role.UNIT, Role.AGENCY, Role.OPERATOR, Role.ADMIN)


async def get_extension(ctx: ServiceContext, caller: Caller, extension_id: str) -> ExtensionPublic:
    """The requesting unit and the reviewers read a request (reason, progress, measures)."""
    caller.require(*EXTENSION_READERS)
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(select(extensions).where(extensions.c.extension_id == extension_id))
        ).first()
        if row is None:
            raise NotFound(f"no extension request {extension_id}")
        if caller.district_scope is not None:
            caller.require_district(
                await conn.scalar(
                    select(tickets.c.district).where(tickets.c.ticket_id == row.ticket_id)
                )
            )
    caller.require_unit(row.unit_id)
    return ExtensionPublic.model_validate(dict(row._mapping))


async def ticket_extensions(ctx: ServiceContext, ticket_id: str) -> list[ExtensionPublic]:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(extensions)
                .where(extensions.c.ticket_id == ticket_id)
                .order_by(extensions.c.requested_at)
            )
        ).all()
    return [ExtensionPublic.model_validate(dict(r._mapping)) for r in rows]


async def list_extensions(
    ctx: ServiceContext, caller: Caller, *, state_: str | None, limit: int, offset: int
) -> tuple[list[ExtensionPublic], int]:
    """The requests to review (``state_="requested"``), oldest first: a unit sees its own,
    a district work agency its district's (Art 3), the city agency all."""
    caller.require(*EXTENSION_READERS)
    conds = []
    if state_ is not None:
        conds.append(extensions.c.state == state_)
    if caller.role is Role.UNIT:
        conds.append(extensions.c.unit_id == caller.unit_id)
    if caller.district_scope is not None:
        in_district = select(tickets.c.ticket_id).where(tickets.c.district == caller.district_scope)
        conds.append(extensions.c.ticket_id.in_(in_district))
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(extensions).where(*conds))
        rows = (
            await conn.execute(
                select(extensions)
                .where(*conds)
                .order_by(extensions.c.requested_at, extensions.c.extension_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return [ExtensionPublic.model_validate(dict(r._mapping)) for r in rows], count or 0
