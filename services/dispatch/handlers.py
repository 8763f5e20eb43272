"""Dispatch's event consumers and command handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.dispatch.domain import (
    Assignment,
    CatalogMatter,
    Level,
    State,
    Unit,
    expand_catalog,
    route,
)
from services.dispatch.models import assignments, matter_units, matters, units
from services.dispatch.schemas import (
    AssignmentPublic,
    AssignmentsPublic,
    MatterPublic,
    ReplyCreate,
    UnitPublic,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import IllegalTransition, NotFound
from shared.events import (
    Envelope,
    MatterPublished,
    Reply,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketPendingDetermination,
    TicketRegistered,
    parse_payload,
)
from shared.service import ServiceContext

log = logging.getLogger("hotline.dispatch")
CATALOG_FILE = Path(__file__).parent / "data" / "catalog.json"
PRODUCER = "dispatch"


def _unit(row: Any) -> Unit:
    return Unit(
        row.unit_id,
        row.name,
        Level(row.level),
        row.functional,
        row.industry,
        row.district,
        row.parent_id,
    )


def _matter(row: Any) -> CatalogMatter:
    return CatalogMatter(
        row.code,
        row.name,
        row.default_urgency,
        row.functional_only,
        row.statutory_period,
        row.anonymous_allowed,
    )


# ---- starter catalog ------------------------------------------------------------------


async def seed_catalog(ctx: ServiceContext) -> None:
    """Load the starter catalog into an empty database and publish its matters."""
    if not ctx.settings.seed_demo:
        return
    async with ctx.db.engine.connect() as conn:
        if await conn.scalar(select(func.count()).select_from(matters)):
            return
    data = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    unit_list, matter_list, rows = expand_catalog(data)
    now = ctx.clock.now()
    try:
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(insert(units), [vars(u) for u in unit_list])
            await uow.conn.execute(
                insert(matters),
                [
                    {
                        **vars(m),
                        "keywords": next(
                            x["keywords"] for x in data["matters"] if x["code"] == m.code
                        ),
                        "active": True,
                        "catalog_version": data["version"],
                    }
                    for m in matter_list
                ],
            )
            await uow.conn.execute(
                insert(matter_units),
                [{"matter_code": c, "district": d, "unit_id": u} for c, d, u in rows],
            )
            uow.emit(
                *(
                    MatterPublished(
                        code=m.code,
                        name=m.name,
                        default_urgency=m.default_urgency,  # type: ignore[arg-type]
                        anonymous_allowed=m.anonymous_allowed,
                    ).envelope(producer=PRODUCER, occurred_at=now, ticket_id=m.code)
                    for m in matter_list
                )
            )
    except IntegrityError:
        log.info("starter catalog already loaded by another instance")
        return
    log.info("starter catalog loaded", extra={"units": len(unit_list), "matters": len(matter_list)})


# ---- events ---------------------------------------------------------------------------


async def on_ticket_registered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Art 7, 8: dispatch per catalog, or hold for determination."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketRegistered)
    conn = uow.conn
    matter_row = (
        await conn.execute(select(matters).where(matters.c.code == event.matter_code))
    ).first()
    unit_row = (
        await conn.execute(
            select(units)
            .join(matter_units, matter_units.c.unit_id == units.c.unit_id)
            .where(
                matter_units.c.matter_code == event.matter_code,
                matter_units.c.district == event.district,
            )
        )
    ).first()
    matter = _matter(matter_row) if matter_row else None
    decision = route(matter, _unit(unit_row) if unit_row else None)
    now = ctx.clock.now()
    dispatched = decision.unit_id is not None
    inserted = await conn.execute(
        insert_ignoring_duplicates(conn, assignments).values(
            ticket_id=event.ticket_id,
            matter_code=event.matter_code,
            district=event.district,
            type=event.type,
            urgency=event.urgency,
            unit_id=decision.unit_id,
            state=State.DISPATCHED if dispatched else State.PENDING_DETERMINATION,
            round=1,
            statutory_period=matter.statutory_period if matter else None,
            registered_at=event.registered_at,
            dispatched_at=now if dispatched else None,
            note=None if dispatched else decision.reason,
        )
    )
    if inserted.rowcount == 0:
        return  # the same registration re-sent under another event id
    if decision.unit_id is not None:
        uow.emit(
            TicketDispatched(
                ticket_id=event.ticket_id,
                unit_id=decision.unit_id,
                matter_code=event.matter_code,
                district=event.district,
                type=event.type,
                urgency=event.urgency,
                dispatched_at=now,
                statutory_period=matter.statutory_period if matter else None,
            ).envelope(producer=PRODUCER, occurred_at=now)
        )
    else:
        uow.emit(
            TicketPendingDetermination(
                ticket_id=event.ticket_id,
                matter_code=event.matter_code,
                district=event.district,
                reason=decision.reason,
            ).envelope(producer=PRODUCER, occurred_at=now)
        )


EVENT_HANDLERS = {TicketRegistered.TYPE: on_ticket_registered}


# ---- commands -------------------------------------------------------------------------


def _assignment(row: Any) -> Assignment:
    return Assignment(
        row.ticket_id,
        State(row.state),
        row.unit_id,
        row.round,
        row.dispatched_at,
        row.accepted_at,
        row.completed_at,
    )


async def _load_for_update(uow: UnitOfWork, ticket_id: str) -> Any:
    query = select(assignments).where(assignments.c.ticket_id == ticket_id)
    if uow.conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await uow.conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id} in dispatch")
    return row


def _acting_unit(caller: Caller) -> str | None:
    caller.require(Role.UNIT)
    return caller.unit_id


async def accept_ticket(ctx: ServiceContext, caller: Caller, ticket_id: str) -> AssignmentPublic:
    """接收: the assigned unit takes the ticket (Art 11)."""
    unit_id = _acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _load_for_update(uow, ticket_id)
        accepted = _assignment(row).accept(by_unit=unit_id, at=now)
        await _save(uow, row.state, accepted, {"accepted_at": now})
        uow.emit(
            TicketAccepted(
                ticket_id=ticket_id, unit_id=row.unit_id, accepted_at=now, round=row.round
            ).envelope(producer=PRODUCER, occurred_at=now)
        )
    return await get_assignment(ctx, caller, ticket_id)


async def complete_ticket(
    ctx: ServiceContext, caller: Caller, ticket_id: str, reply: ReplyCreate
) -> AssignmentPublic:
    """办结: the unit replies with everything Art 13 requires."""
    unit_id = _acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _load_for_update(uow, ticket_id)
        completed = _assignment(row).complete(
            by_unit=unit_id, at=now, contacted_at=reply.contacted_at
        )
        body = Reply(**reply.model_dump())
        await _save(
            uow, row.state, completed, {"completed_at": now, "reply": body.model_dump(mode="json")}
        )
        uow.emit(
            TicketCompleted(
                ticket_id=ticket_id,
                unit_id=row.unit_id,
                completed_at=now,
                round=row.round,
                type=row.type,
                reply=body,
            ).envelope(producer=PRODUCER, occurred_at=now)
        )
    return await get_assignment(ctx, caller, ticket_id)


async def _save(
    uow: UnitOfWork, old_state: str, new: Assignment, values: Mapping[str, Any]
) -> None:
    """Write the new state only if nobody changed it meanwhile (SQLite has no row locks)."""
    result = await uow.conn.execute(
        update(assignments)
        .where(assignments.c.ticket_id == new.ticket_id, assignments.c.state == old_state)
        .values(state=new.state, **values)
    )
    if result.rowcount != 1:
        raise IllegalTransition(f"ticket {new.ticket_id} changed meanwhile; try again")


# ---- queries --------------------------------------------------------------------------

READING_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT, Role.AUTHORITY)


def _public(row: Any) -> AssignmentPublic:
    return AssignmentPublic.model_validate({**row._mapping, "unit_name": row.unit_name})


def _joined() -> Any:
    return select(assignments, units.c.name.label("unit_name")).outerjoin(
        units, units.c.unit_id == assignments.c.unit_id
    )


async def get_assignment(ctx: ServiceContext, caller: Caller, ticket_id: str) -> AssignmentPublic:
    caller.require(*READING_ROLES)
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(_joined().where(assignments.c.ticket_id == ticket_id))).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id} in dispatch")
    caller.require_unit(row.unit_id)
    return _public(row)


async def list_assignments(
    ctx: ServiceContext,
    caller: Caller,
    *,
    state: str | None,
    unit_id: str | None,
    limit: int,
    offset: int,
) -> AssignmentsPublic:
    caller.require(*READING_ROLES)
    if caller.role is Role.UNIT:
        unit_id = caller.unit_id  # a unit sees only its own tickets (Art 28)
    query = _joined()
    if state:
        query = query.where(assignments.c.state == state)
    if unit_id:
        query = query.where(assignments.c.unit_id == unit_id)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(assignments.c.registered_at.desc()).limit(limit).offset(offset)
            )
        ).all()
    return AssignmentsPublic(data=[_public(r) for r in rows], count=count or 0)


async def list_units(ctx: ServiceContext, district: str | None) -> list[UnitPublic]:
    query = select(units).order_by(units.c.unit_id)
    if district:
        query = query.where(units.c.district == district)
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [UnitPublic.model_validate(dict(r._mapping)) for r in rows]


async def list_matters(ctx: ServiceContext) -> list[MatterPublic]:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(matters).where(matters.c.active).order_by(matters.c.code))
        ).all()
    return [MatterPublic.model_validate(dict(r._mapping)) for r in rows]
