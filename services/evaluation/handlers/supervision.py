"""督办 (Art 21): supervision records opened by hand or from an SLA escalation, the
addressed unit's answer, closing, and the lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import (
    SupervisionKind,
    SupervisionState,
    addressee,
    check_can_answer,
    check_can_close,
)
from services.evaluation.handlers.common import (
    PRODUCER,
    due_after,
    new_id,
    policy_at,
    row_dict,
    scoped_unit,
    unit_names,
)
from services.evaluation.models import supervisions, tickets, units
from services.evaluation.schemas import (
    SupervisionAnswer,
    SupervisionClose,
    SupervisionCreate,
    SupervisionPublic,
    SupervisionsPublic,
)
from shared.auth import Caller, Role
from shared.calendar import shanghai_time
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from shared.events import (
    Envelope,
    Escalated,
    SupervisionAnswered,
    SupervisionClosed,
    SupervisionOpened,
    parse_payload,
)
from shared.service import ServiceContext

READERS = (Role.AGENCY, Role.ADMIN, Role.OPERATOR, Role.UNIT)


async def _parent_of(conn: AsyncConnection, unit_id: str | None) -> str | None:
    if unit_id is None:
        return None
    parent: str | None = await conn.scalar(
        select(units.c.parent_id).where(units.c.unit_id == unit_id)
    )
    return parent


async def _open(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    kind: SupervisionKind,
    ticket_id: str | None,
    subject_unit_id: str | None,
    source: str,
    reason: str,
    opened_by: str,
    opened_at: datetime,
    escalation_key: str | None = None,
    escalation_level: int | None = None,
) -> str | None:
    """Store a supervision and emit ``supervision.opened`` in the same transaction. An
    escalation already recorded (same key) opens nothing: returns None."""
    policy = await policy_at(uow.conn, opened_at)
    to_unit = addressee(kind, subject_unit_id, await _parent_of(uow.conn, subject_unit_id))
    supervision_id = new_id()
    due_at = due_after(ctx, opened_at, policy.supervision_answer_due)
    values: dict[str, Any] = {
        "supervision_id": supervision_id,
        "kind": kind.value,
        "ticket_id": ticket_id,
        "subject_unit_id": subject_unit_id,
        "unit_id": to_unit,
        "source": source,
        "escalation_key": escalation_key,
        "reason": reason,
        "opened_by": opened_by,
        "opened_at": opened_at,
        "due_at": due_at,
        "state": SupervisionState.OPEN.value,
    }
    if escalation_key is None:
        await uow.conn.execute(insert(supervisions).values(values))
    else:
        done = await uow.conn.execute(
            insert_ignoring_duplicates(uow.conn, supervisions).values(values)
        )
        if done.rowcount == 0:
            return None
    uow.emit(
        SupervisionOpened(
            supervision_id=supervision_id,
            kind=kind.value,
            ticket_id=ticket_id,
            subject_unit_id=subject_unit_id,
            unit_id=to_unit,
            source=source,  # type: ignore[arg-type]
            escalation_level=escalation_level,
            reason=reason,
            opened_by=opened_by,
            opened_at=opened_at,
            due_at=due_at,
        ).outgoing(producer=PRODUCER, occurred_at=ctx.clock.now())
    )
    return supervision_id


async def on_escalated(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """sla.escalated → one supervision per (ticket, clock, round, level): level 1 a ticket
    supervision of the unit, level 2 a written one to its parent (RULES.md §4, Art 21)."""
    event = parse_payload(envelope)
    assert isinstance(event, Escalated)
    kind = SupervisionKind(event.supervision_kind)
    await _open(
        ctx,
        uow,
        kind=kind,
        ticket_id=event.ticket_id,
        subject_unit_id=event.unit_id,
        source="escalation",
        reason=(
            f"SLA escalation level {event.level}: the {event.clock} deadline "
            f"{shanghai_time(event.deadline)} (round {event.round}) was missed"
        ),
        opened_by="sla",
        opened_at=event.escalated_at,
        escalation_key=f"{event.ticket_id}:{event.clock}:{event.round}:{event.level}",
        escalation_level=event.level,
    )


# ---- commands -------------------------------------------------------------------------------


async def open_supervision(
    ctx: ServiceContext, caller: Caller, data: SupervisionCreate
) -> SupervisionPublic:
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        subject = data.unit_id
        if data.ticket_id is not None:
            ticket = (
                await uow.conn.execute(select(tickets).where(tickets.c.ticket_id == data.ticket_id))
            ).first()
            if ticket is None:
                raise InvalidInput("ticket_id", f"unknown ticket {data.ticket_id}")
            caller.require_district(ticket.district)
            subject = subject or ticket.unit_id
        if subject is None:
            raise InvalidInput("unit_id", "name the supervised unit (or a dispatched ticket)")
        known = (await uow.conn.execute(select(units).where(units.c.unit_id == subject))).first()
        if known is None and data.unit_id is not None:
            raise InvalidInput("unit_id", f"unknown unit {subject}")
        if data.ticket_id is None and caller.district_scope is not None:
            caller.require_district(known.district if known else None)
        supervision_id = await _open(
            ctx,
            uow,
            kind=data.kind,
            ticket_id=data.ticket_id,
            subject_unit_id=subject,
            source="manual",
            reason=data.reason,
            opened_by=caller.sub,
            opened_at=now,
        )
    assert supervision_id is not None
    return await get_supervision(ctx, caller, supervision_id)


async def _row(conn: AsyncConnection, supervision_id: str) -> Any:
    row = (
        await conn.execute(
            select(supervisions).where(supervisions.c.supervision_id == supervision_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no supervision {supervision_id}")
    return row


async def answer_supervision(
    ctx: ServiceContext, caller: Caller, supervision_id: str, data: SupervisionAnswer
) -> SupervisionPublic:
    """The addressed unit answers (Art 21: the unit must respond)."""
    caller.require(Role.UNIT)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _row(uow.conn, supervision_id)
        if row.unit_id != caller.unit_id:
            raise Forbidden("only the addressed unit answers a supervision")
        check_can_answer(supervision_id, SupervisionState(row.state))
        done = await uow.conn.execute(
            update(supervisions)
            .where(
                supervisions.c.supervision_id == supervision_id,
                supervisions.c.state == SupervisionState.OPEN.value,
            )
            .values(
                state=SupervisionState.ANSWERED.value,
                answer=data.answer,
                answered_by=caller.sub,
                answered_at=now,
            )
        )
        if done.rowcount != 1:
            raise IllegalTransition(f"supervision {supervision_id} was answered meanwhile")
        uow.emit(
            SupervisionAnswered(
                supervision_id=supervision_id,
                ticket_id=row.ticket_id,
                unit_id=row.unit_id,
                answer=data.answer,
                answered_by=caller.sub,
                answered_at=now,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await get_supervision(ctx, caller, supervision_id)


async def close_supervision(
    ctx: ServiceContext, caller: Caller, supervision_id: str, data: SupervisionClose
) -> SupervisionPublic:
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _row(uow.conn, supervision_id)
        if not await _in_district(uow.conn, supervision_id, caller.district_scope):
            raise Forbidden(
                f"this supervision is outside district {caller.district_scope}",
                rule="Art 3: a district work agency runs the hotline inside its district",
            )
        check_can_close(supervision_id, SupervisionState(row.state))
        await uow.conn.execute(
            update(supervisions)
            .where(supervisions.c.supervision_id == supervision_id)
            .values(
                state=SupervisionState.CLOSED.value,
                close_note=data.note,
                closed_by=caller.sub,
                closed_at=now,
            )
        )
        uow.emit(
            SupervisionClosed(
                supervision_id=supervision_id,
                ticket_id=row.ticket_id,
                note=data.note,
                closed_by=caller.sub,
                closed_at=now,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await get_supervision(ctx, caller, supervision_id)


# ---- queries --------------------------------------------------------------------------------


def _public(row: Any, names: dict[str, str], now: datetime) -> SupervisionPublic:
    data = row_dict(row)
    data.pop("escalation_key", None)
    return SupervisionPublic(
        **data,
        unit_name=names.get(row.unit_id) if row.unit_id else None,
        overdue=row.state == SupervisionState.OPEN.value and row.due_at < now,
    )


def supervisions_of_district(district: str) -> Any:
    """Supervisions of a district's tickets, and of its units when about no ticket (Art 3)."""
    return or_(
        supervisions.c.ticket_id.in_(
            select(tickets.c.ticket_id).where(tickets.c.district == district)
        ),
        and_(
            supervisions.c.ticket_id.is_(None),
            supervisions.c.subject_unit_id.in_(
                select(units.c.unit_id).where(units.c.district == district)
            ),
        ),
    )


async def _in_district(conn: AsyncConnection, supervision_id: str, district: str | None) -> bool:
    if district is None:
        return True
    found = await conn.scalar(
        select(func.count()).where(
            supervisions.c.supervision_id == supervision_id, supervisions_of_district(district)
        )
    )
    return bool(found)


def _visible_to_unit(unit_id: str | None) -> Any:
    return or_(supervisions.c.unit_id == unit_id, supervisions.c.subject_unit_id == unit_id)


async def get_supervision(
    ctx: ServiceContext, caller: Caller, supervision_id: str
) -> SupervisionPublic:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        row = await _row(conn, supervision_id)
        names = await unit_names(conn)
        if not await _in_district(conn, supervision_id, caller.district_scope):
            raise Forbidden(
                f"this supervision is outside district {caller.district_scope}",
                rule="Art 3: a district work agency runs the hotline inside its district",
            )
    if caller.role is Role.UNIT and caller.unit_id not in (row.unit_id, row.subject_unit_id):
        raise Forbidden("this supervision concerns another unit")
    return _public(row, names, ctx.clock.now())


async def list_supervisions(
    ctx: ServiceContext,
    caller: Caller,
    *,
    state: SupervisionState | None,
    unit_id: str | None,
    ticket_id: str | None,
    limit: int,
    offset: int,
) -> SupervisionsPublic:
    caller.require(*READERS)
    unit = scoped_unit(caller, unit_id)
    query = select(supervisions)
    if state is not None:
        query = query.where(supervisions.c.state == state.value)
    if unit is not None:
        query = query.where(_visible_to_unit(unit))
    if ticket_id is not None:
        query = query.where(supervisions.c.ticket_id == ticket_id)
    if caller.district_scope is not None:
        query = query.where(supervisions_of_district(caller.district_scope))
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(query.order_by(supervisions.c.opened_at.desc()))).all()
        names = await unit_names(conn)
    now = ctx.clock.now()
    return SupervisionsPublic(
        data=[_public(r, names, now) for r in rows[offset : offset + limit]], count=len(rows)
    )
