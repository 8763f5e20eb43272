"""Intake's event consumers: it keeps a read model of the dispatch catalog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select

from services.intake.domain import (
    DISTRICTS,
    RequesterMissing,
    check_requester,
    mask_name,
    mask_phone,
    ticket_number,
)
from services.intake.models import matters, tickets
from services.intake.schemas import MatterPublic, TicketCreate, TicketPublic, TicketsPublic
from shared.auth import Caller, Role
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import InvalidInput, NotFound
from shared.events import Envelope, MatterPublished, TicketRegistered, Urgency, parse_payload
from shared.service import ServiceContext

# Art 28: full requester data only where the role needs it.
FULL_REQUESTER_ROLES = frozenset({Role.OPERATOR, Role.AGENCY, Role.ADMIN})


async def on_matter_published(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, MatterPublished)
    values = {
        "name": event.name,
        "default_urgency": event.default_urgency,
        "anonymous_allowed": event.anonymous_allowed,
        "active": event.active,
    }
    stmt = insert_ignoring_duplicates(uow.conn, matters).values(code=event.code, **values)
    result = await uow.conn.execute(stmt)
    if result.rowcount == 0:
        await uow.conn.execute(matters.update().where(matters.c.code == event.code).values(values))


EVENT_HANDLERS = {MatterPublished.TYPE: on_matter_published}


# ---- commands -------------------------------------------------------------------------


async def register_ticket(ctx: ServiceContext, caller: Caller, data: TicketCreate) -> TicketPublic:
    """Register a request (Art 5) and emit ``ticket.registered``, in one transaction."""
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        matter = (
            await uow.conn.execute(select(matters).where(matters.c.code == data.matter_code))
        ).first()
        if matter is None or not matter.active:
            raise InvalidInput("matter_code", f"unknown matter code {data.matter_code!r}")
        try:
            check_requester(
                data.type,
                data.requester.name,
                data.requester.phone,
                anonymous=data.anonymous,
                anonymous_allowed=matter.anonymous_allowed,
            )
        except RequesterMissing as missing:
            raise InvalidInput(missing.field, missing.reason) from None
        urgency: Urgency = data.urgency or matter.default_urgency
        values = {
            "channel": data.channel,
            "type": data.type,
            "urgency": urgency,
            "matter_code": data.matter_code,
            "district": data.district,
            "address": data.address,
            "content": data.content,
            "requester_name": data.requester.name,
            "requester_phone": data.requester.phone,
            "anonymous": data.anonymous,
            "flagged": False,
            "status": "registered",
            "registered_at": now,
            "registered_by": caller.sub,
        }
        serial = await uow.conn.scalar(insert(tickets).values(values).returning(tickets.c.id))
        assert serial is not None
        number = ticket_number(serial, now)
        await uow.conn.execute(
            tickets.update().where(tickets.c.id == serial).values(ticket_id=number)
        )
        uow.emit(
            TicketRegistered(
                ticket_id=number,
                channel=data.channel,
                type=data.type,
                urgency=urgency,
                matter_code=data.matter_code,
                district=data.district,
                address=data.address,
                content=data.content,
                registered_at=now,
                anonymous=data.anonymous,
            ).envelope(producer="intake", occurred_at=now)
        )
    return to_public({**values, "ticket_id": number}, caller)


def to_public(row: Mapping[Any, Any], caller: Caller) -> TicketPublic:
    full = caller.role in FULL_REQUESTER_ROLES
    return TicketPublic(
        ticket_id=row["ticket_id"],
        status=row["status"],
        channel=row["channel"],
        type=row["type"],
        urgency=row["urgency"],
        matter_code=row["matter_code"],
        district=row["district"],
        district_name=DISTRICTS[row["district"]],
        address=row["address"],
        content=row["content"],
        requester_name=row["requester_name"] if full else mask_name(row["requester_name"]),
        requester_phone=row["requester_phone"] if full else mask_phone(row["requester_phone"]),
        anonymous=row["anonymous"],
        flagged=row["flagged"],
        registered_at=row["registered_at"],
    )


async def get_ticket(ctx: ServiceContext, caller: Caller, ticket_id: str) -> TicketPublic:
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    return to_public(row._mapping, caller)


async def list_tickets(
    ctx: ServiceContext, caller: Caller, *, status: str | None, limit: int, offset: int
) -> TicketsPublic:
    query = select(tickets).where(tickets.c.ticket_id.is_not(None))
    if status:
        query = query.where(tickets.c.status == status)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(query.order_by(tickets.c.id.desc()).limit(limit).offset(offset))
        ).all()
    return TicketsPublic(data=[to_public(r._mapping, caller) for r in rows], count=count or 0)


async def list_matters(ctx: ServiceContext) -> list[MatterPublic]:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(matters).where(matters.c.active).order_by(matters.c.code))
        ).all()
    return [MatterPublic.model_validate(r._mapping, from_attributes=False) for r in rows]


async def catalog_readiness(ctx: ServiceContext) -> dict[str, Any]:
    """Intake can only register tickets once it knows the catalog's matters."""
    async with ctx.db.engine.connect() as conn:
        known = await conn.scalar(select(func.count()).select_from(matters))
    return {"matters_known": known or 0, "ready": bool(known)}
