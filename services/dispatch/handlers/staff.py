"""A unit's responsible staff (专人, Art 4) and assigning a work order to one of them."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.domain.staff import Duty, StaffMember, check_assignee, check_staff
from services.dispatch.handlers.common import PRODUCER, get_unit, load_for_update
from services.dispatch.models import assignments, unit_staff
from services.dispatch.schemas import AssigneeSet, StaffList, StaffMemberIn
from shared.auth import Caller, Role
from shared.errors import Forbidden, IllegalTransition
from shared.events import StaffContact, UnitStaffPublished
from shared.service import ServiceContext


def _own_unit(caller: Caller, unit_id: str) -> None:
    caller.require(Role.UNIT, Role.ADMIN, Role.AGENCY, Role.OPERATOR)
    if caller.role is Role.UNIT and caller.unit_id != unit_id:
        raise Forbidden("a unit names and reads its own staff only")


async def staff_of(conn: AsyncConnection, unit_id: str) -> list[StaffMember]:
    rows = await conn.execute(
        select(unit_staff).where(unit_staff.c.unit_id == unit_id).order_by(unit_staff.c.username)
    )
    return [
        StaffMember(r.username, r.name, tuple(Duty(d) for d in r.duties), r.deputy, r.phone)
        for r in rows
    ]


def _public(unit_id: str, staff: list[StaffMember]) -> StaffList:
    return StaffList(
        unit_id=unit_id,
        staff=[
            StaffMemberIn(
                username=m.username,
                name=m.name,
                duties=list(m.duties),
                deputy=m.deputy,
                phone=m.phone,
            )
            for m in staff
        ],
    )


async def set_staff(
    ctx: ServiceContext, caller: Caller, unit_id: str, body: StaffList
) -> StaffList:
    """The unit (or an admin) names its staff; the whole list is replaced."""
    caller.require(Role.UNIT, Role.ADMIN)
    _own_unit(caller, unit_id)
    staff = [
        StaffMember(m.username, m.name, tuple(m.duties), m.deputy, m.phone) for m in body.staff
    ]
    check_staff(staff)
    async with ctx.db.unit_of_work() as uow:
        await get_unit(uow.conn, unit_id)
        await uow.conn.execute(delete(unit_staff).where(unit_staff.c.unit_id == unit_id))
        await uow.conn.execute(
            insert(unit_staff),
            [
                {
                    "unit_id": unit_id,
                    "username": m.username,
                    "name": m.name,
                    "duties": [d.value for d in m.duties],
                    "deputy": m.deputy,
                    "phone": m.phone,
                }
                for m in staff
            ],
        )
        # Art 4: the named staff are who the unit's notifications reach (channels service)
        uow.emit(
            UnitStaffPublished(
                unit_id=unit_id,
                staff=[
                    StaffContact(
                        username=m.username,
                        name=m.name,
                        duties=[d.value for d in m.duties],
                        deputy=m.deputy,
                        phone=m.phone,
                    )
                    for m in staff
                ],
            ).outgoing(producer=PRODUCER, occurred_at=ctx.clock.now(), ticket_id=unit_id)
        )
    return await get_staff(ctx, caller, unit_id)


async def get_staff(ctx: ServiceContext, caller: Caller, unit_id: str) -> StaffList:
    _own_unit(caller, unit_id)
    async with ctx.db.engine.connect() as conn:
        await get_unit(conn, unit_id)
        return _public(unit_id, await staff_of(conn, unit_id))


async def assign(ctx: ServiceContext, caller: Caller, ticket_id: str, body: AssigneeSet) -> None:
    """The lead unit gives its work order to one of its handling staff (Art 4)."""
    caller.require(Role.UNIT)
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        if current.unit_id != caller.unit_id:
            raise Forbidden("only the lead unit assigns its work order")
        if current.state.value not in ("dispatched", "accepted", "rehandling", "return_review"):
            raise IllegalTransition(
                f"ticket {ticket_id} is {current.state.value}: nothing to assign",
                rule="Art 4: open work orders are assigned",
            )
        check_assignee(await staff_of(uow.conn, row.unit_id), body.username)
        await uow.conn.execute(
            update(assignments)
            .where(assignments.c.ticket_id == ticket_id)
            .values(assignee=body.username)
        )
