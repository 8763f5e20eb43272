"""The evaluation service's event consumers, commands and queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import RevisitState, check_can_rate, initial_state
from services.evaluation.models import revisits
from services.evaluation.schemas import RevisitPublic, RevisitRecord
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.errors import IllegalTransition, NotFound
from shared.events import Envelope, RevisitRecorded, TicketCompleted, parse_payload
from shared.service import ServiceContext


async def on_completed(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Every completed ticket opens a revisit (Art 14), except praise and suggestions."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketCompleted)
    await uow.conn.execute(
        insert(revisits).values(
            ticket_id=event.ticket_id,
            round=event.round,
            unit_id=event.unit_id,
            type=event.type,
            state=initial_state(event.type),
            completed_at=event.completed_at,
        )
    )


EVENT_HANDLERS = {TicketCompleted.TYPE: on_completed}


async def _latest(conn: AsyncConnection, ticket_id: str) -> Row[Any]:
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


async def record_revisit(
    ctx: ServiceContext, caller: Caller, ticket_id: str, data: RevisitRecord
) -> RevisitPublic:
    caller.require(Role.OPERATOR, Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _latest(uow.conn, ticket_id)
        check_can_rate(ticket_id, RevisitState(row.state))
        values = {
            "state": RevisitState.RATED,
            "rating": data.rating,
            "resolved": data.resolved,
            "note": data.note,
            "recorded_at": now,
            "recorded_by": caller.sub,
        }
        result = await uow.conn.execute(
            update(revisits)
            .where(
                revisits.c.ticket_id == ticket_id,
                revisits.c.round == row.round,
                revisits.c.state == RevisitState.OPEN,
            )
            .values(values)
        )
        if result.rowcount != 1:
            raise IllegalTransition(f"ticket {ticket_id} was rated meanwhile")
        uow.emit(
            RevisitRecorded(
                ticket_id=ticket_id,
                rating=data.rating.value,
                resolved=data.resolved,
                recorded_at=now,
            ).envelope(producer="evaluation", occurred_at=now)
        )
    return await get_revisit(ctx, caller, ticket_id)


async def get_revisit(ctx: ServiceContext, caller: Caller, ticket_id: str) -> RevisitPublic:
    async with ctx.db.engine.connect() as conn:
        row = await _latest(conn, ticket_id)
    caller.require_unit(row.unit_id)
    return RevisitPublic.model_validate(dict(row._mapping))
