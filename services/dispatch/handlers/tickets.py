"""A ticket's way through dispatch: registration (auto-dispatch, suggestion or
determination), manual dispatch, referral, acceptance, the reply, co-unit input and
re-handling; plus the facts other services tell us (flags, deadlines)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from types import EllipsisType
from typing import Any, get_args

from orjson import OPT_UTC_Z, dumps
from sqlalchemy import func, insert, select, update

from services.dispatch.domain import (
    CatalogMatter,
    Route,
    State,
    check_dispatch_target,
    route,
)
from services.dispatch.handlers import suggest as suggestions
from services.dispatch.handlers.common import (
    PRODUCER,
    acting_unit,
    fallback_acceptance_deadline,
    fallback_completion_deadline,
    get_matter,
    get_unit,
    load_for_update,
    matter_from_row,
    new_id,
    save,
    unit_from_row,
    write_dispatch,
)
from services.dispatch.handlers.read_models import take_early
from services.dispatch.models import (
    assignments,
    co_unit_inputs,
    determinations,
    flags,
    matter_units,
    matters,
    replies,
    units,
)
from services.dispatch.schemas import (
    InputCreate,
    InputPublic,
    ManualDispatch,
    Referral,
    ReplyCreate,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import InvalidInput
from shared.events import (
    Envelope,
    Outgoing,
    Reply,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
    TicketPendingDetermination,
    TicketRegistered,
    TicketType,
    Urgency,
    parse_payload,
)
from shared.events.base import orjson_time
from shared.service import ServiceContext

log = logging.getLogger("hotline.dispatch")


# ---- registration ---------------------------------------------------------------------


def assignment_row(
    event: TicketRegistered,
    decision: Route,
    matter: CatalogMatter | None,
    *,
    flagged: bool,
    now: datetime,
    acceptance_deadline: datetime | None,
    dispatch_deadline: datetime | None,
) -> dict[str, Any]:
    """The assignment a registration opens, as the catalog routes it; ``dispatch_deadline``
    the SLA's, if it came first (``take_early``)."""
    dispatched = decision.unit_id is not None
    state = (
        State.DISPATCHED
        if dispatched
        else State.PENDING_DETERMINATION
        if decision.needs_determination
        else State.PENDING_DISPATCH
    )
    return {
        "ticket_id": event.ticket_id,
        "matter_code": event.matter_code,
        "district": event.district,
        "type": event.type,
        "urgency": event.urgency,
        "unit_id": decision.unit_id,
        "state": state,
        "round": 1,
        "dispatch_no": 1 if dispatched else 0,
        "determined": False,
        "flagged": flagged,
        "statutory_period": matter.statutory_period if matter else None,
        "content": event.content,
        "address": event.address,
        "registered_at": event.registered_at,
        "dispatched_at": now if dispatched else None,
        "dispatch_deadline": dispatch_deadline,
        "acceptance_deadline": acceptance_deadline,
        "deadline_source": "policy" if dispatched else None,
        "note": None if dispatched else decision.reason,
    }


def dispatched_event(row: dict[str, Any], trace_id: str | None | EllipsisType = ...) -> Outgoing:
    """Art 7: the catalog's unit has the ticket (``trace_id``: the one in force unless
    given)."""
    dispatched = TicketDispatched.of(dispatched_fields(row))
    return dispatched.outgoing(
        producer=PRODUCER, occurred_at=row["dispatched_at"], trace_id=trace_id
    )


def dispatched_fields(row: dict[str, Any]) -> dict[str, Any]:
    """``ticket.dispatched``'s fields of a new work order's row."""
    return {
        "ticket_id": row["ticket_id"],
        "unit_id": row["unit_id"],
        "matter_code": row["matter_code"],
        "district": row["district"],
        "type": row["type"],
        "urgency": row["urgency"],
        "dispatched_at": row["dispatched_at"],
        "round": 1,
        "statutory_period": row["statutory_period"],
        "dispatch_no": 1,
    }


def dispatched_json(row: dict[str, Any]) -> bytes | None:
    """``ticket.dispatched``'s payload JSON of a new work order's row, the bytes its model
    writes (``TicketDispatched.of(dispatched_fields(row))``'s), written by orjson without
    the model (~1 us a work order): each value a text (the type and urgency among the
    model's), the period a text or null, the time aware (``orjson_time``). None when one is
    not: the model then validates the fields (or refuses them). tests/unit/dispatch holds
    the two equal."""
    at, period = row["dispatched_at"], row["statutory_period"]
    if (
        type(row["ticket_id"]) is str
        and type(row["unit_id"]) is str
        and type(row["matter_code"]) is str
        and type(row["district"]) is str
        and type(row["type"]) is str
        and row["type"] in _TICKET_TYPES
        and type(row["urgency"]) is str
        and row["urgency"] in _URGENCIES
        and (period is None or type(period) is str)
        and type(at) is datetime
        and at.utcoffset() is not None
    ):
        fields = dispatched_fields(row)  # in the model's order, and its last field's default
        fields["dispatched_at"], fields["co_unit_ids"] = orjson_time(at), []
        return dumps(fields, option=OPT_UTC_Z)
    return None


_TICKET_TYPES = frozenset(get_args(TicketType))
_URGENCIES = frozenset(get_args(Urgency))


def dispatched_run(
    rows: Sequence[dict[str, Any]], *, occurred_at: datetime, trace_ids: Sequence[str | None]
) -> list[Outgoing]:
    """The ``ticket.dispatched`` of each of a set-based run's new work orders (``rows``),
    each under its event's trace id: their payloads written here (``dispatched_json``),
    else validated and written by the model (``outgoing_run``): the same envelopes."""
    return TicketDispatched.outgoing_rows_run(
        rows,
        written=dispatched_json,
        fields=dispatched_fields,
        producer=PRODUCER,
        occurred_at=occurred_at,
        trace_ids=trace_ids,
    )


async def on_ticket_registered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketRegistered)
    early = await take_early(uow.conn, [event.ticket_id])
    await register(ctx, uow, event, early.get(event.ticket_id))


async def register(
    ctx: ServiceContext,
    uow: UnitOfWork,
    event: TicketRegistered,
    dispatch_deadline: datetime | None,
) -> None:
    """Art 7, 8: dispatch per catalog; a matter the catalog leaves open goes to
    determination; otherwise a confident suggestion, or the manual queue. The work order
    opens with the SLA's dispatch deadline if that came first (``dispatch_deadline``)."""
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
    matter = matter_from_row(matter_row) if matter_row else None
    names_any_unit = True
    if unit_row is None and matter is not None:
        names_any_unit = bool(
            await conn.scalar(
                select(func.count()).where(matter_units.c.matter_code == event.matter_code)
            )
        )
    decision = route(
        matter, unit_from_row(unit_row) if unit_row else None, names_any_unit=names_any_unit
    )
    now = ctx.clock.now()
    flagged = event.flagged or bool(
        await conn.scalar(select(func.count()).where(flags.c.ticket_id == event.ticket_id))
    )
    dispatched = decision.unit_id is not None
    row = assignment_row(
        event,
        decision,
        matter,
        flagged=flagged,
        now=now,
        acceptance_deadline=(
            await fallback_acceptance_deadline(ctx, event.urgency, now) if dispatched else None
        ),
        dispatch_deadline=dispatch_deadline,
    )
    inserted = await conn.execute(insert_ignoring_duplicates(conn, assignments).values(row))
    if inserted.rowcount == 0:
        return  # the same registration re-sent under another event id
    if dispatched:
        uow.emit(dispatched_event(row))
    elif decision.needs_determination:
        await conn.execute(
            insert(determinations).values(
                ticket_id=event.ticket_id,
                candidate_unit_ids=[],
                referred_by="system",
                referred_at=now,
                referral_reason=decision.reason,
                status="pending",
            )
        )
        uow.emit(
            TicketPendingDetermination(
                ticket_id=event.ticket_id,
                matter_code=event.matter_code,
                district=event.district,
                reason=decision.reason,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    else:
        await dispatch_by_suggestion(ctx, uow, event.ticket_id, reason=decision.reason)


async def dispatch_by_suggestion(
    ctx: ServiceContext,
    uow: UnitOfWork,
    ticket_id: str,
    *,
    reason: str,
    exclude_units: frozenset[str] = frozenset(),
) -> None:
    """No catalog route: dispatch to the suggested unit when the suggestion is confident;
    otherwise leave the ticket in the manual queue with the suggestion beside it."""
    row, current = await load_for_update(uow, ticket_id)
    found = await suggestions.suggest(
        ctx, uow.conn, row.content or "", row.district, exclude_units=exclude_units
    )
    detail = found.model_dump(mode="json")
    if not found.confident or found.unit_id is None or found.matter_code is None:
        await uow.conn.execute(
            update(assignments)
            .where(assignments.c.ticket_id == ticket_id)
            .values(
                suggestion=detail,
                note=f"{reason}; suggestion below the threshold: manual dispatch",
            )
        )
        return
    matter = await get_matter(uow.conn, found.matter_code)
    new = current.dispatch(found.unit_id, at=ctx.clock.now())
    await uow.conn.execute(
        update(assignments).where(assignments.c.ticket_id == ticket_id).values(suggestion=detail)
    )
    await write_dispatch(
        ctx,
        uow,
        row,
        current,
        new,
        matter_code=found.matter_code,
        statutory_period=matter.statutory_period if matter else None,
        note=f"{reason}; dispatched by suggestion (confidence {found.confidence})",
    )


# ---- operators and the agency ---------------------------------------------------------


async def dispatch_manually(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: ManualDispatch
) -> None:
    """派单 by hand from the manual queue, with the Art 8 checks."""
    caller.require(Role.OPERATOR, Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        gap = await _catalog_gap(uow.conn, caller, ticket_id, current.state, body.note)
        new = current.dispatch_manually(body.unit_id, at=now, catalog_gap=gap is not None)
        unit = await get_unit(uow.conn, body.unit_id)
        code = body.matter_code or row.matter_code
        matter = await get_matter(uow.conn, code)
        if body.matter_code and matter is None:
            raise InvalidInput("matter_code", f"unknown matter {body.matter_code}")
        if matter is not None:
            check_dispatch_target(matter, unit)
        await write_dispatch(
            ctx,
            uow,
            row,
            current,
            new,
            matter_code=body.matter_code,
            statutory_period=matter.statutory_period if matter else None,
            note=body.note or f"dispatched by {caller.sub}",
        )
        if gap is not None:
            await uow.conn.execute(
                update(determinations)
                .where(determinations.c.id == gap)
                .values(
                    status="dispatched_by_hand",
                    lead_unit_id=body.unit_id,
                    co_unit_ids=[],
                    decided_by=caller.sub,
                    decided_role=caller.role.value,
                    decided_at=now,
                    reason=body.note,
                )
            )


async def _catalog_gap(
    conn: Any, caller: Caller, ticket_id: str, state: State, note: str | None
) -> int | None:
    """The pending determination an agency may close by dispatching by hand: one the
    system opened because the catalog names no unit for the matter (not a dispute someone
    referred). The agency's reason is recorded; without one the dispatch is refused."""
    if state is not State.PENDING_DETERMINATION or caller.role is not Role.AGENCY:
        return None
    case = (
        await conn.execute(
            select(determinations.c.id, determinations.c.referred_by).where(
                determinations.c.ticket_id == ticket_id, determinations.c.status == "pending"
            )
        )
    ).first()
    if case is None or case.referred_by != "system":
        return None
    if not (note or "").strip():
        raise InvalidInput(
            "note",
            "the catalog names no unit for this matter: record why this unit (Art 7, 8)",
        )
    return int(case.id)


async def refer_for_determination(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: Referral
) -> None:
    """Disputed responsibility (Art 8): to the determination queue."""
    caller.require(Role.OPERATOR, Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        held = current.refer_for_determination()
        for unit_id in body.candidate_unit_ids:
            await get_unit(uow.conn, unit_id, field="candidate_unit_ids")
        await save(uow, current.state, held, {"note": body.reason})
        await uow.conn.execute(
            insert(determinations).values(
                ticket_id=ticket_id,
                kind=body.kind,
                candidate_unit_ids=body.candidate_unit_ids,
                referred_by=caller.sub,
                referred_at=now,
                referral_reason=body.reason,
                status="pending",
            )
        )
        uow.emit(
            TicketPendingDetermination(
                ticket_id=ticket_id,
                matter_code=row.matter_code,
                district=row.district,
                reason=body.reason,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )


# ---- the unit -------------------------------------------------------------------------


async def accept_ticket(ctx: ServiceContext, caller: Caller, ticket_id: str) -> None:
    """接收: the lead unit takes the ticket (Art 11)."""
    unit_id = acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        accepted = current.accept(by_unit=unit_id, at=now)
        deadline = await fallback_completion_deadline(ctx, row.urgency, row.statutory_period, now)
        await save(
            uow,
            current.state,
            accepted,
            {"completion_deadline": deadline, "deadline_source": "policy"},
        )
        uow.emit(
            TicketAccepted(
                ticket_id=ticket_id, unit_id=row.unit_id, accepted_at=now, round=row.round
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )


async def complete_ticket(
    ctx: ServiceContext, caller: Caller, ticket_id: str, reply: ReplyCreate
) -> None:
    """办结: the lead unit replies with everything Art 13 requires."""
    unit_id = acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        completed = current.complete(by_unit=unit_id, at=now, contacted_at=reply.contacted_at)
        body = Reply(**reply.model_dump())
        as_json = body.model_dump(mode="json")
        await save(uow, current.state, completed, {"reply": as_json})
        await uow.conn.execute(
            insert_ignoring_duplicates(uow.conn, replies).values(
                ticket_id=ticket_id,
                round=row.round,
                unit_id=row.unit_id,
                reply=as_json,
                completed_at=now,
            )
        )
        if row.round == 1:  # a completed first round confirms matter and unit
            await suggestions.learn(uow, row.content, row.matter_code, row.district, row.unit_id)
        uow.emit(
            TicketCompleted(
                ticket_id=ticket_id,
                unit_id=row.unit_id,
                completed_at=now,
                round=row.round,
                type=row.type,
                reply=body,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )


async def add_input(
    ctx: ServiceContext, caller: Caller, ticket_id: str, body: InputCreate
) -> InputPublic:
    """协办: a co-unit adds its input for the lead unit."""
    unit_id = acting_unit(caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row, current = await load_for_update(uow, ticket_id, caller)
        current.check_co_unit_input(unit_id)
        values = {
            "ticket_id": ticket_id,
            "unit_id": unit_id,
            "round": row.round,
            "text": body.text,
            "created_by": caller.sub,
            "created_at": now,
        }
        result = await uow.conn.execute(insert(co_unit_inputs).values(**values))
    return InputPublic(id=new_id(result), **values)
