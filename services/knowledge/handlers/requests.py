"""Update requests (Art 17): the agency asks a unit to add, correct, supplement, confirm,
withdraw or adjust knowledge; the unit answers by linking the change it made."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from services.knowledge.domain import (
    RequestStatus,
    check_answer,
    request_due,
)
from services.knowledge.handlers.common import (
    PRODUCER,
    entry_row,
    policy_at,
    state,
    wake_scanner,
)
from services.knowledge.models import entry_versions, update_requests
from services.knowledge.schemas import (
    UpdateRequestAnswer,
    UpdateRequestCreate,
    UpdateRequestPublic,
    UpdateRequestsPublic,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import KnowledgeRequestAnswered, KnowledgeRequestCreated
from shared.service import ServiceContext


def _public(row: Any, now: datetime) -> UpdateRequestPublic:
    data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    data["overdue"] = data["status"] == RequestStatus.OPEN and now >= data["due_at"]
    return UpdateRequestPublic.model_validate(data)


async def create_request(
    ctx: ServiceContext, caller: Caller, data: UpdateRequestCreate
) -> UpdateRequestPublic:
    caller.require(Role.AGENCY, Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        unit_id = data.unit_id
        if data.entry_id is not None:
            entry = await entry_row(uow.conn, data.entry_id)
            if unit_id not in (None, entry.unit_id):
                raise InvalidInput("unit_id", "the entry belongs to another unit")
            unit_id = entry.unit_id
        if not unit_id:
            raise InvalidInput("unit_id", "required when no entry is named")
        policy = await policy_at(uow.conn, now)
        period, due = request_due(state(ctx).calendar, policy, now, data.emergency)
        request_id = str(uuid.uuid4())
        row: dict[str, Any] = {
            "request_id": request_id,
            "unit_id": unit_id,
            "entry_id": data.entry_id,
            "action": data.action.value,
            "reason": data.reason,
            "emergency": data.emergency,
            "requested_at": now,
            "requested_by": caller.sub,
            "period": str(period),
            "due_at": due.at,
            "provisional": due.provisional,
            "status": RequestStatus.OPEN.value,
        }
        await uow.conn.execute(insert(update_requests).values(row))
        uow.emit(
            KnowledgeRequestCreated(
                request_id=request_id,
                unit_id=unit_id,
                entry_id=data.entry_id,
                action=data.action.value,
                reason=data.reason,
                emergency=data.emergency,
                requested_at=now,
                due_at=due.at,
                provisional=due.provisional,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
        uow.after_commit.append(lambda: wake_scanner(ctx))
    return _public({**row, **dict.fromkeys(_ANSWER_FIELDS)}, now)


_ANSWER_FIELDS = (
    "answered_at",
    "answered_by",
    "answer_entry_id",
    "answer_version",
    "answer_note",
    "late",
    "overdue_at",
)


async def answer_request(
    ctx: ServiceContext, caller: Caller, request_id: str, data: UpdateRequestAnswer
) -> UpdateRequestPublic:
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        stmt = select(update_requests).where(update_requests.c.request_id == request_id)
        req = (await uow.conn.execute(stmt.with_for_update())).first()
        if req is None:
            raise NotFound(f"no update request {request_id}")
        if caller.role is Role.UNIT and caller.unit_id != req.unit_id:
            raise Forbidden("this request was made to another unit")
        entry = await entry_row(uow.conn, data.entry_id)
        if entry.unit_id != req.unit_id:
            raise InvalidInput("entry_id", "link an entry of the unit that was asked")
        if req.entry_id is not None and req.entry_id != data.entry_id:
            raise InvalidInput("entry_id", f"the request is about entry {req.entry_id}")
        number = data.version or entry.version
        version = (
            await uow.conn.execute(
                select(entry_versions).where(
                    entry_versions.c.entry_id == data.entry_id,
                    entry_versions.c.version == number,
                )
            )
        ).first()
        if version is None:
            raise InvalidInput("version", f"entry {data.entry_id} has no version {number}")
        check_answer(req.requested_at, version.changed_at, RequestStatus(req.status))
        late = now > req.due_at
        after = {
            "status": RequestStatus.ANSWERED.value,
            "answered_at": now,
            "answered_by": caller.sub,
            "answer_entry_id": data.entry_id,
            "answer_version": number,
            "answer_note": data.note,
            "late": late,
        }
        await uow.conn.execute(
            update(update_requests).where(update_requests.c.request_id == request_id).values(after)
        )
        uow.emit(
            KnowledgeRequestAnswered(
                request_id=request_id,
                unit_id=req.unit_id,
                entry_id=data.entry_id,
                entry_version=number,
                answered_at=now,
                due_at=req.due_at,
                late=late,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return _public({**dict(req._mapping), **after}, now)


async def get_request(ctx: ServiceContext, caller: Caller, request_id: str) -> UpdateRequestPublic:
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN)
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(update_requests).where(update_requests.c.request_id == request_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"no update request {request_id}")
    if caller.role is Role.UNIT and caller.unit_id != row.unit_id:
        raise Forbidden("this request was made to another unit")
    return _public(row, ctx.clock.now())


async def list_requests(
    ctx: ServiceContext,
    caller: Caller,
    *,
    unit_id: str | None,
    status: RequestStatus | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> UpdateRequestsPublic:
    """Overdue = still open past its due time, or answered after it."""
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN)
    if caller.role is Role.UNIT:
        if unit_id not in (None, caller.unit_id):
            raise Forbidden("a unit sees only the requests made to it")
        unit_id = caller.unit_id
    now = ctx.clock.now()
    r = update_requests.c
    where: list[Any] = []
    if unit_id is not None:
        where.append(r.unit_id == unit_id)
    if status is not None:
        where.append(r.status == status.value)
    late = or_(and_(r.status == RequestStatus.OPEN.value, r.due_at <= now), r.late.is_(True))
    if overdue is True:
        where.append(late)
    elif overdue is False:
        where.append(~late)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(update_requests).where(*where))
        rows = (
            await conn.execute(
                select(update_requests)
                .where(*where)
                .order_by(r.due_at, r.request_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return UpdateRequestsPublic(data=[_public(x, now) for x in rows], count=count or 0)
