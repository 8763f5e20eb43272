"""The knowledge service's commands and queries."""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select

from services.knowledge.domain import check_validity
from services.knowledge.models import entries
from services.knowledge.schemas import EntryCreate, EntryPublic
from shared.auth import Caller, Role
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import KnowledgePublished
from shared.service import ServiceContext

EDITING_ROLES = (Role.UNIT, Role.AGENCY, Role.ADMIN)


async def create_entry(ctx: ServiceContext, caller: Caller, data: EntryCreate) -> EntryPublic:
    caller.require(*EDITING_ROLES)
    unit_id = data.unit_id
    if caller.role is Role.UNIT:
        # Art 15, 20: a unit maintains only its own entries.
        if unit_id not in (None, caller.unit_id):
            raise Forbidden("a unit may only create entries it owns")
        unit_id = caller.unit_id
    if not unit_id:
        raise InvalidInput("unit_id", "required: the unit that owns the entry")
    check_validity(data.kind, data.valid_from, data.valid_until)
    now = ctx.clock.now()
    row = {
        **data.model_dump(),
        "entry_id": str(uuid.uuid4()),
        "unit_id": unit_id,
        "status": "published",
        "created_at": now,
        "created_by": caller.sub,
    }
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(insert(entries).values(row))
        uow.emit(
            KnowledgePublished(
                entry_id=row["entry_id"],
                kind=data.kind.value,
                title=data.title,
                unit_id=unit_id,
                valid_until=data.valid_until,
            ).envelope(producer="knowledge", occurred_at=now)
        )
    return EntryPublic.model_validate(row)


async def get_entry(ctx: ServiceContext, caller: Caller, entry_id: str) -> EntryPublic:
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(select(entries).where(entries.c.entry_id == entry_id))).first()
    if row is None:
        raise NotFound(f"no knowledge entry {entry_id}")
    return EntryPublic.model_validate(dict(row._mapping))
