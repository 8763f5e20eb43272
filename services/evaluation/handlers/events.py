"""Event consumers: the read models of tickets, dispatches, SLA clocks and units that
scores, monitoring and supervision need, and the revisits opened on completion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from services.evaluation.domain import RevisitState, initial_state
from services.evaluation.handlers.common import PRODUCER, due_after, policy_at
from services.evaluation.handlers.monitoring import tally_hotspot
from services.evaluation.handlers.supervision import on_escalated
from services.evaluation.models import (
    extensions,
    handlings,
    revisits,
    sla_clocks,
    tickets,
    units,
)
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.events import (
    Envelope,
    Escalated,
    EvaluationClosed,
    ExtensionApproved,
    ExtensionExplained,
    Overdue,
    RegisteredView,
    ReturnApproved,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketFlagged,
    TicketRegistered,
    UnitPublished,
    parse_payload,
)
from shared.service import ServiceContext


def ticket_row(ticket_id: str, **known: Any) -> dict[str, Any]:
    """The ticket's read-model row as the first event about it creates it."""
    return {"ticket_id": ticket_id, "round": 1, "state": "registered", "flagged": False, **known}


async def _ensure_ticket(uow: UnitOfWork, ticket_id: str, **known: Any) -> bool:
    """The ticket's read-model row, created from whatever event comes first."""
    done = await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, tickets).values(ticket_row(ticket_id, **known))
    )
    return bool(done.rowcount)


async def _set_ticket(uow: UnitOfWork, ticket_id: str, **values: Any) -> None:
    await uow.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(values))


def registration_facts(event: TicketRegistered | RegisteredView) -> dict[str, Any]:
    return {
        "type": event.type,
        "urgency": event.urgency,
        "channel": event.channel,
        "matter_code": event.matter_code,
        "district": event.district,
        "registered_at": event.registered_at,
        "updated_at": event.registered_at,
    }


def registered_row(event: TicketRegistered | RegisteredView) -> dict[str, Any]:
    """The row a registration creates (every key always present: rows go in together)."""
    return ticket_row(
        event.ticket_id,
        **registration_facts(event),
        flagged=event.flagged,
        flagged_at=event.registered_at if event.flagged else None,
    )


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketRegistered)
    done = await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, tickets).values(registered_row(event))
    )
    if not await first_heard(uow, event, created=bool(done.rowcount)):
        return
    await tally_hotspot(
        ctx,
        uow,
        ticket_id=event.ticket_id,
        matter_code=event.matter_code,
        district=event.district,
        registered_at=event.registered_at,
    )


async def first_heard(
    uow: UnitOfWork, event: TicketRegistered | RegisteredView, *, created: bool
) -> bool:
    """Whether this registration is heard for the first time (it then counts into its
    hotspot, once)."""
    if created:
        return True
    # the same fact again (a producer retry) counts once; a row that a later event
    # created first only lacks the registration facts
    filled = await uow.conn.execute(
        update(tickets)
        .where(tickets.c.ticket_id == event.ticket_id, tickets.c.registered_at.is_(None))
        .values(registration_facts(event))
    )
    return bool(filled.rowcount)


async def on_flagged(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketFlagged)
    await _ensure_ticket(
        uow, event.ticket_id, matter_code=event.matter_code, district=event.district
    )
    await uow.conn.execute(
        update(tickets)
        .where(tickets.c.ticket_id == event.ticket_id)
        .values(
            flagged=True,
            flagged_at=func.coalesce(tickets.c.flagged_at, event.flagged_at),
            flag_keywords=event.keywords,
        )
    )


def handling_row(event: TicketDispatched) -> dict[str, Any]:
    return {
        "ticket_id": event.ticket_id,
        "round": event.round,
        "dispatch_no": event.dispatch_no,
        "unit_id": event.unit_id,
        "matter_code": event.matter_code,
        "district": event.district,
        "dispatched_at": event.dispatched_at,
    }


def dispatched_ticket_row(event: TicketDispatched) -> dict[str, Any]:
    """The ticket's row if the dispatch is the first event heard about it."""
    return ticket_row(
        event.ticket_id,
        type=event.type,
        urgency=event.urgency,
        matter_code=event.matter_code,
        district=event.district,
    )


def dispatched_ticket_values(event: TicketDispatched) -> dict[str, Any]:
    return {
        "unit_id": event.unit_id,
        "round": event.round,
        "state": "dispatched",
        "updated_at": event.dispatched_at,
    }


async def handed_back(uow: UnitOfWork, event: TicketDispatched) -> None:
    """Art 10: an earlier dispatch of this round that was never accepted was handed back
    (a first dispatch has none)."""
    if event.dispatch_no <= 1:
        return
    await uow.conn.execute(
        update(handlings)
        .where(
            handlings.c.ticket_id == event.ticket_id,
            handlings.c.round == event.round,
            handlings.c.dispatch_no < event.dispatch_no,
            handlings.c.accepted_at.is_(None),
            handlings.c.returned_at.is_(None),
        )
        .values(returned_at=event.dispatched_at)
    )


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketDispatched)
    conn = uow.conn
    await conn.execute(insert_ignoring_duplicates(conn, handlings).values(handling_row(event)))
    await handed_back(uow, event)
    await conn.execute(
        insert_ignoring_duplicates(conn, tickets).values(dispatched_ticket_row(event))
    )
    await _set_ticket(uow, event.ticket_id, **dispatched_ticket_values(event))


async def _latest_dispatch(
    uow: UnitOfWork, ticket_id: str, round_: int, unit_id: str
) -> int | None:
    found: int | None = await uow.conn.scalar(
        select(func.max(handlings.c.dispatch_no)).where(
            handlings.c.ticket_id == ticket_id,
            handlings.c.round == round_,
            handlings.c.unit_id == unit_id,
        )
    )
    return found


async def on_accepted(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketAccepted)
    dispatch_no = await _latest_dispatch(uow, event.ticket_id, event.round, event.unit_id)
    if dispatch_no is not None:
        await uow.conn.execute(
            update(handlings)
            .where(
                handlings.c.ticket_id == event.ticket_id,
                handlings.c.round == event.round,
                handlings.c.dispatch_no == dispatch_no,
                handlings.c.accepted_at.is_(None),
            )
            .values(accepted_at=event.accepted_at)
        )
    await _set_ticket(uow, event.ticket_id, state="accepted", updated_at=event.accepted_at)


async def on_return_approved(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, ReturnApproved)
    await uow.conn.execute(
        update(handlings)
        .where(
            handlings.c.ticket_id == event.ticket_id,
            handlings.c.unit_id == event.unit_id,
            handlings.c.accepted_at.is_(None),
            handlings.c.returned_at.is_(None),
        )
        .values(returned_at=event.decided_at)
    )
    await _set_ticket(uow, event.ticket_id, state="pending_dispatch", updated_at=event.decided_at)


async def on_completed(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Every completed ticket opens a revisit due by the policy setting (Art 14); praise
    and suggestions are closed at once without one."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketCompleted)
    conn = uow.conn
    dispatch_no = await _latest_dispatch(uow, event.ticket_id, event.round, event.unit_id)
    if dispatch_no is not None:
        await conn.execute(
            update(handlings)
            .where(
                handlings.c.ticket_id == event.ticket_id,
                handlings.c.round == event.round,
                handlings.c.dispatch_no == dispatch_no,
                handlings.c.completed_at.is_(None),
            )
            .values(completed_at=event.completed_at)
        )
    policy = await policy_at(conn, event.completed_at)
    state = initial_state(event.type)
    closed = state is RevisitState.NOT_REQUIRED
    opened = await conn.execute(
        insert_ignoring_duplicates(conn, revisits).values(
            ticket_id=event.ticket_id,
            round=event.round,
            unit_id=event.unit_id,
            type=event.type,
            state=state.value,
            completed_at=event.completed_at,
            due_at=due_after(ctx, event.completed_at, policy.revisit_due),
            closed_at=event.completed_at if closed else None,
        )
    )
    await _ensure_ticket(uow, event.ticket_id, type=event.type)
    await _set_ticket(
        uow,
        event.ticket_id,
        unit_id=event.unit_id,
        state="closed" if closed else "completed",
        updated_at=event.completed_at,
    )
    if closed and opened.rowcount:
        uow.emit(
            EvaluationClosed(
                ticket_id=event.ticket_id,
                round=event.round,
                unit_id=event.unit_id,
                outcome="not_required",
                reason=f"{event.type} tickets are closed without a revisit (Art 14)",
                closed_at=event.completed_at,
            ).outgoing(producer=PRODUCER, occurred_at=ctx.clock.now())
        )


def clock_key(ticket_id: str, clock: str, round_: int, unit: str | None) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "clock": clock, "round": round_, "unit_key": unit or ""}


async def _clock_row(
    uow: UnitOfWork, ticket_id: str, clock: str, round_: int, unit: str | None
) -> Any:
    key = clock_key(ticket_id, clock, round_, unit)
    await uow.conn.execute(insert_ignoring_duplicates(uow.conn, sla_clocks).values(**key))
    return update(sla_clocks).where(*(sla_clocks.c[k] == v for k, v in key.items()))


async def on_overdue(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """A clock that got sla.overdue was late, whenever its ticket was accepted or done.
    Its row begins here: the scores ask of a clock only whether it went overdue, so
    ``sla.deadline_set`` (two or three a ticket, most clocks never late) is not taken."""
    event = parse_payload(envelope)
    assert isinstance(event, Overdue)
    stmt = await _clock_row(uow, event.ticket_id, event.clock, event.round, event.unit_id)
    await uow.conn.execute(
        stmt.where(sla_clocks.c.overdue_at.is_(None)).values(
            deadline=event.deadline, overdue_at=event.detected_at, late_seconds=event.late_seconds
        )
    )


async def on_unit_published(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, UnitPublished)
    values = {
        "name": event.name,
        "level": event.level,
        "industry": event.industry,
        "district": event.district,
        "parent_id": event.parent_id,
        "functional": event.functional,
    }
    done = await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, units).values(unit_id=event.unit_id, **values)
    )
    if done.rowcount == 0:
        await uow.conn.execute(update(units).where(units.c.unit_id == event.unit_id).values(values))


async def on_extension_approved(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, ExtensionApproved)
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, extensions).values(
            extension_id=event.extension_id,
            ticket_id=event.ticket_id,
            unit_id=event.unit_id,
            approved_at=event.decided_at,
            old_deadline=event.old_deadline,
            new_deadline=event.new_deadline,
        )
    )


async def on_extension_explained(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Art 12: what the unit told the requester, so the revisit can check it."""
    event = parse_payload(envelope)
    assert isinstance(event, ExtensionExplained)
    await uow.conn.execute(
        update(extensions)
        .where(extensions.c.extension_id == event.extension_id)
        .values(
            explained_via=event.channel,
            explained_at=event.explained_at,
            progress=event.progress,
            measures=event.measures,
            content=event.content,
        )
    )


EVENT_HANDLERS = {
    TicketRegistered.TYPE: on_registered,
    TicketFlagged.TYPE: on_flagged,
    TicketDispatched.TYPE: on_dispatched,
    TicketAccepted.TYPE: on_accepted,
    ReturnApproved.TYPE: on_return_approved,
    TicketCompleted.TYPE: on_completed,
    Overdue.TYPE: on_overdue,
    Escalated.TYPE: on_escalated,
    UnitPublished.TYPE: on_unit_published,
    ExtensionApproved.TYPE: on_extension_approved,
    ExtensionExplained.TYPE: on_extension_explained,
}
