"""The SLA service's event consumers (start and stop clocks), the overdue scanner and
its queries."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from services.sla.domain import (
    ClockKind,
    Policy,
    clock_state,
    deadline_for,
    lateness_seconds,
    policy_in_force,
)
from services.sla.models import clocks, policy_versions, tickets
from services.sla.schemas import ClockPublic, PolicyPublic, PolicyVersion, TicketClocks
from shared.auth import Caller, Role
from shared.calendar import WorkingCalendar
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import NotFound
from shared.events import (
    DeadlineSet,
    Envelope,
    Overdue,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketRegistered,
    parse_payload,
)
from shared.service import ServiceContext

log = logging.getLogger("hotline.sla")
PRODUCER = "sla"
SCAN_BATCH = 1000
# Other instances' new clocks are seen within this many seconds even without a wake-up.
IDLE_POLL_SECONDS = 0.5


class SlaState:
    """What the SLA service keeps in memory: the calendar, the policy versions, and the
    event that wakes the scanner when a new clock starts."""

    def __init__(self, versions: list[Policy]) -> None:
        self.calendar = WorkingCalendar()
        self.versions = versions
        self.wake = asyncio.Event()


def state(ctx: ServiceContext) -> SlaState:
    sla: SlaState = ctx.extras["sla"]
    return sla


async def load_state(ctx: ServiceContext) -> None:
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(select(policy_versions))).all()
    ctx.extras["sla"] = SlaState([Policy(r.effective_from, r.settings) for r in rows])


# ---- clocks start and stop ------------------------------------------------------------


async def _start_clock(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    ticket_id: str,
    kind: ClockKind,
    round_: int,
    urgency: str,
    started_at: datetime,
    unit_id: str | None,
    statutory_period: str | None = None,
) -> None:
    sla = state(ctx)
    policy = policy_in_force(sla.versions, started_at)
    period, deadline = deadline_for(
        sla.calendar, policy, kind, urgency, started_at, statutory_period
    )
    # The same fact under another event id (a producer retry) must not start a 2nd clock.
    inserted = await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, clocks).values(
            ticket_id=ticket_id,
            kind=kind,
            round=round_,
            unit_id=unit_id,
            urgency=urgency,
            period=str(period),
            started_at=started_at,
            deadline=deadline.at,
            provisional=deadline.provisional,
        )
    )
    if inserted.rowcount == 0:
        return
    uow.emit(
        DeadlineSet(
            ticket_id=ticket_id,
            clock=kind.value,
            round=round_,
            unit_id=unit_id,
            started_at=started_at,
            deadline=deadline.at,
            period=str(period),
            provisional=deadline.provisional,
        ).envelope(producer=PRODUCER, occurred_at=ctx.clock.now())
    )
    uow.after_commit.append(sla.wake.set)


async def _stop_clock(
    uow: UnitOfWork, ticket_id: str, kind: ClockKind, round_: int, at: datetime
) -> None:
    await uow.conn.execute(
        update(clocks)
        .where(
            clocks.c.ticket_id == ticket_id,
            clocks.c.kind == kind,
            clocks.c.round == round_,
            clocks.c.stopped_at.is_(None),
        )
        .values(stopped_at=at)
    )


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketRegistered)
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, tickets).values(
            ticket_id=event.ticket_id,
            urgency=event.urgency,
            type=event.type,
            district=event.district,
            round=1,
            registered_at=event.registered_at,
        )
    )
    # Art 6: dispatch within 24 h (general) or at once (urgent classes), from registration.
    await _start_clock(
        ctx,
        uow,
        ticket_id=event.ticket_id,
        kind=ClockKind.DISPATCH,
        round_=1,
        urgency=event.urgency,
        started_at=event.registered_at,
        unit_id=None,
    )


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketDispatched)
    await uow.conn.execute(
        update(tickets)
        .where(tickets.c.ticket_id == event.ticket_id)
        .values(unit_id=event.unit_id, statutory_period=event.statutory_period, round=event.round)
    )
    await _stop_clock(uow, event.ticket_id, ClockKind.DISPATCH, 1, event.dispatched_at)
    # Art 9, 11: acceptance is measured from dispatch.
    await _start_clock(
        ctx,
        uow,
        ticket_id=event.ticket_id,
        kind=ClockKind.ACCEPTANCE,
        round_=event.round,
        urgency=event.urgency,
        started_at=event.dispatched_at,
        unit_id=event.unit_id,
    )


async def on_accepted(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketAccepted)
    ticket = (
        await uow.conn.execute(select(tickets).where(tickets.c.ticket_id == event.ticket_id))
    ).one()
    await _stop_clock(uow, event.ticket_id, ClockKind.ACCEPTANCE, event.round, event.accepted_at)
    # Art 11: completion is measured from acceptance ("接收工单后").
    await _start_clock(
        ctx,
        uow,
        ticket_id=event.ticket_id,
        kind=ClockKind.COMPLETION,
        round_=event.round,
        urgency=ticket.urgency,
        started_at=event.accepted_at,
        unit_id=event.unit_id,
        statutory_period=ticket.statutory_period,
    )


async def on_completed(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketCompleted)
    await _stop_clock(uow, event.ticket_id, ClockKind.COMPLETION, event.round, event.completed_at)


EVENT_HANDLERS = {
    TicketRegistered.TYPE: on_registered,
    TicketDispatched.TYPE: on_dispatched,
    TicketAccepted.TYPE: on_accepted,
    TicketCompleted.TYPE: on_completed,
}


# ---- the overdue scanner --------------------------------------------------------------


async def emit_overdue(ctx: ServiceContext) -> int:
    """Mark every clock whose deadline has passed unmet and emit ``sla.overdue`` for it,
    in one transaction. A marked clock is never picked again, and two instances skip each
    other's locked rows, so each clock's event is emitted once."""
    now = ctx.clock.now()
    due = (
        select(clocks)
        .where(clocks.c.stopped_at.is_(None), clocks.c.overdue_at.is_(None))
        .where(clocks.c.deadline <= now)
        .order_by(clocks.c.deadline)
        .limit(SCAN_BATCH)
    )
    async with ctx.db.unit_of_work() as uow:
        if ctx.db.is_postgres:
            due = due.with_for_update(skip_locked=True)
        rows = (await uow.conn.execute(due)).all()
        if not rows:
            return 0
        await uow.conn.execute(
            update(clocks).where(clocks.c.id.in_([r.id for r in rows])).values(overdue_at=now)
        )
        uow.emit(
            *(
                Overdue(
                    ticket_id=r.ticket_id,
                    clock=r.kind,
                    round=r.round,
                    unit_id=r.unit_id,
                    deadline=r.deadline,
                    detected_at=now,
                    late_seconds=(now - r.deadline).total_seconds(),
                ).envelope(producer=PRODUCER, occurred_at=now)
                for r in rows
            )
        )
    return len(rows)


async def next_deadline(ctx: ServiceContext) -> datetime | None:
    async with ctx.db.engine.connect() as conn:
        return await conn.scalar(
            select(func.min(clocks.c.deadline)).where(
                clocks.c.stopped_at.is_(None), clocks.c.overdue_at.is_(None)
            )
        )


async def overdue_scanner(ctx: ServiceContext) -> None:
    """Sleeps until the next deadline (or a new clock, or a moved test clock), then acts.
    Nothing is scanned while nothing is due: a million waiting clocks cost one index
    lookup per wake-up."""
    sla = state(ctx)
    while True:
        try:
            if await emit_overdue(ctx) >= SCAN_BATCH:
                continue
            upcoming = await next_deadline(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("overdue scan failed; retrying")
            await asyncio.sleep(1.0)
            continue
        sla.wake.clear()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(sla.wake.wait())]
        if upcoming is not None:
            waits.append(asyncio.ensure_future(ctx.clock.sleep_until(upcoming)))
        try:
            await asyncio.wait(
                waits, timeout=IDLE_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits:
                waiter.cancel()


# ---- queries --------------------------------------------------------------------------


async def ticket_clocks(ctx: ServiceContext, caller: Caller, ticket_id: str) -> TicketClocks:
    caller.require(Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT, Role.AUTHORITY)
    async with ctx.db.engine.connect() as conn:
        ticket = (
            await conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id))
        ).first()
        if ticket is None:
            raise NotFound(f"no clocks for ticket {ticket_id}")
        caller.require_unit(ticket.unit_id)
        rows = (
            await conn.execute(
                select(clocks).where(clocks.c.ticket_id == ticket_id).order_by(clocks.c.id)
            )
        ).all()
    now = ctx.clock.now()
    return TicketClocks(
        ticket_id=ticket_id,
        clocks=[_clock_public(r, now) for r in rows],
    )


def _clock_public(row: Any, now: datetime) -> ClockPublic:
    return ClockPublic(
        kind=row.kind,
        round=row.round,
        unit_id=row.unit_id,
        urgency=row.urgency,
        period=row.period,
        started_at=row.started_at,
        deadline=row.deadline,
        provisional=row.provisional,
        state=clock_state(row.deadline, row.stopped_at, now),
        stopped_at=row.stopped_at,
        overdue_at=row.overdue_at,
        late_seconds=lateness_seconds(row.deadline, row.stopped_at, now),
    )


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    sla = state(ctx)
    versions = sorted(sla.versions, key=lambda v: v.effective_from)
    in_force = policy_in_force(versions, ctx.clock.now())
    as_public = [
        PolicyVersion(effective_from=v.effective_from, settings=v.settings, created_by="")
        for v in versions
    ]
    return PolicyPublic(
        in_force=as_public[versions.index(in_force)],
        versions=as_public,
    )


async def calendar_readiness(ctx: ServiceContext) -> dict[str, Any]:
    """Years near now without official calendar data: deadlines there are provisional."""
    year = ctx.clock.now().year
    missing = state(ctx).calendar.missing_years([year, year + 1])
    return {"calendar_missing_years": missing}
