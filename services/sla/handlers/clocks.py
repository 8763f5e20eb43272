"""Clocks start and stop on ticket events (RULES.md §4, Art 6, 9, 10, 11, 14)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import EllipsisType
from typing import Any

from orjson import OPT_UTC_Z, dumps
from sqlalchemy import select, update

from services.sla.domain import (
    ClockKind,
    Policy,
    deadline_for,
    next_due,
    warning_at,
)
from services.sla.handlers.state import ElapsedPlan, SlaState, state
from services.sla.models import clocks, tickets
from shared.calendar import PeriodUnit
from shared.db import UnitOfWork, insert_ignoring_duplicates, insert_new
from shared.events import (
    DeadlineSet,
    Envelope,
    RegisteredView,
    ReturnApproved,
    TicketAccepted,
    TicketAnswered,
    TicketCompleted,
    TicketDispatched,
    TicketRegistered,
    parse_payload,
)
from shared.policy import PolicyVersions
from shared.service import ServiceContext

PRODUCER = "sla"
# a clock is running while neither met nor cancelled
RUNNING = (clocks.c.stopped_at.is_(None), clocks.c.cancelled_at.is_(None))


# a clock's deadline, warning and next due time by its kind, urgency, start and statutory
# period (a run's clocks often share them: a batch of dispatches is stamped with one time)
Timings = dict[tuple[ClockKind, str, datetime, str | None], dict[str, Any]]


# Asia/Shanghai has kept one offset (UTC+8) since 1991-09-15: from 1992 on, a period of
# minutes or hours added to a time in local time (``WorkingCalendar.add``) is that much
# elapsed time, the same for every start (``_elapsed_timing``)
_ONE_OFFSET_FROM = datetime(1992, 1, 1, tzinfo=UTC)
_ELAPSED_UNITS = {PeriodUnit.MINUTES: timedelta(minutes=1), PeriodUnit.HOURS: timedelta(hours=1)}


def _elapsed_plan(
    sla: SlaState,
    kind: ClockKind,
    urgency: str,
    started_utc: datetime,
    statutory_period: str | None,
) -> ElapsedPlan | None:
    """The timing worked out once (``clock_timing``) of a clock whose period is minutes or
    hours (elapsed time) starting at ``started_utc`` (UTC), when there is one for it: the
    start within the plan's policy's time in force, from 1992 on. Its times compared in
    UTC (a time in another zone is compared through its offset each time: ~0.25 us)."""
    plan = sla.elapsed.get((kind, urgency, statutory_period))
    if (
        plan is None
        or plan.versions is not sla.versions
        or started_utc < plan.since
        or (plan.until is not None and started_utc >= plan.until)
    ):
        return None
    return plan


def _elapsed_timing(
    sla: SlaState,
    kind: ClockKind,
    urgency: str,
    started_at: datetime,
    statutory_period: str | None,
) -> dict[str, Any] | None:
    """``clock_timing`` of a clock whose period is minutes or hours (elapsed time) under a
    policy whose timing of such a clock was worked out once (``_elapsed_plan``): its
    deadline and warning that period and its warning fraction of it after the start
    (what ``WorkingCalendar.add`` and ``warning_at`` give from 1992 on), without the local
    time, the calendar and the policy's settings read again for every start. None when not
    known so."""
    deadline = started_at.astimezone(UTC)
    plan = _elapsed_plan(sla, kind, urgency, deadline, statutory_period)
    if plan is None:
        return None
    deadline += plan.delta
    warn = started_at + plan.warn_delta
    return {
        "period": plan.period,
        "deadline": deadline,
        "provisional": False,
        "warn_at": warn,
        "next_due_at": warn if warn < deadline else deadline,
    }


def _in_force_window(
    versions: PolicyVersions[Policy], policy: Policy
) -> tuple[datetime, datetime | None]:
    """The starts (UTC) for which ``policy`` is the one of ``versions`` in force
    (``PolicyVersions.in_force``: the newest effective at a start, the first before it),
    from 1992 on (``_ONE_OFFSET_FROM``)."""
    listed = list(versions)
    i = max(n for n, v in enumerate(listed) if v is policy)
    since = _ONE_OFFSET_FROM if i == 0 else max(policy.effective_from, _ONE_OFFSET_FROM)
    until = listed[i + 1].effective_from.astimezone(UTC) if i + 1 < len(listed) else None
    return since.astimezone(UTC), until


def clock_timing(
    ctx: ServiceContext,
    kind: ClockKind,
    urgency: str,
    started_at: datetime,
    statutory_period: str | None,
) -> dict[str, Any]:
    """A clock's period, deadline, warning and next due time, as it starts."""
    sla = state(ctx)
    timing = _elapsed_timing(sla, kind, urgency, started_at, statutory_period)
    if timing is not None:
        return timing
    policy = sla.versions.in_force(started_at)
    period, deadline = deadline_for(
        sla.calendar, policy, kind, urgency, started_at, statutory_period
    )
    fraction = policy.settings["warning_fraction"]
    warn = warning_at(started_at, deadline.at, fraction)
    elapsed = _ELAPSED_UNITS.get(period.unit)
    if elapsed is not None and started_at >= _ONE_OFFSET_FROM:
        delta = elapsed * period.amount
        if deadline.at - started_at == delta:  # as from 1992 on
            since, until = _in_force_window(sla.versions, policy)
            sla.elapsed[(kind, urgency, statutory_period)] = ElapsedPlan(
                sla.versions, since, until, str(period), delta, delta * fraction
            )
    due = next_due(
        deadline=deadline.at,
        warn_at=warn,
        warned=False,
        overdue=False,
        escalate_at=None,
        level=0,
        stopped=False,
    )
    return {
        "period": str(period),
        "deadline": deadline.at,
        "provisional": deadline.provisional,
        "warn_at": warn,
        "next_due_at": due,
    }


def new_clock(
    ctx: ServiceContext,
    *,
    ticket_id: str,
    kind: ClockKind,
    round_: int,
    dispatch_no: int,
    urgency: str,
    started_at: datetime,
    unit_id: str | None,
    district: str | None,
    statutory_period: str | None = None,
    timings: Timings | None = None,
) -> dict[str, Any]:
    """The row of a clock starting now: its deadline, warning and next due time (from
    ``timings`` when another clock of the run has the same and the period is not one of
    elapsed time, ``_elapsed_plan``; of elapsed time, the same instants in UTC, the
    operations on UTC times being the cheapest: ~1.2 us a clock). ``timings`` is keyed by
    the start in UTC (the same instants as the start itself, which compares and hashes by
    its UTC time anyway: a decoded event's time, in pydantic's zone, works that out through
    its offset each time, ~0.3 us a clock)."""
    started_utc = started_at.astimezone(UTC)
    plan = _elapsed_plan(state(ctx), kind, urgency, started_utc, statutory_period)
    if plan is not None:
        deadline = started_utc + plan.delta
        warn = started_utc + plan.warn_delta
        period, provisional = plan.period, False
        due = warn if warn < deadline else deadline
    else:
        key = (kind, urgency, started_utc, statutory_period)
        timing = timings.get(key) if timings is not None else None
        if timing is None:
            timing = clock_timing(ctx, kind, urgency, started_at, statutory_period)
            if timings is not None:
                timings[key] = timing
        period, deadline, provisional = timing["period"], timing["deadline"], timing["provisional"]
        warn, due = timing["warn_at"], timing["next_due_at"]
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "round": round_,
        "dispatch_no": dispatch_no,
        "unit_id": unit_id,
        "district": district,
        "urgency": urgency,
        "period": period,
        "started_at": started_at,
        "deadline": deadline,
        "provisional": provisional,
        "warn_at": warn,
        "escalation_level": 0,
        "extensions": 0,
        "next_due_at": due,
    }


def clock_key(row: Any) -> tuple[str, str, int, int]:
    """What makes a clock unique (a row's values, or a row: read by attribute, not through
    its ``_mapping``, which ``fetch_rows``' rows make as a dict each time)."""
    if isinstance(row, dict):
        key = row["ticket_id"], row["kind"], row["round"], row["dispatch_no"]
    else:
        key = row.ticket_id, row.kind, row.round, row.dispatch_no
    return str(key[0]), str(key[1]), int(key[2]), int(key[3])


def clock_started(
    ctx: ServiceContext,
    uow: UnitOfWork,
    row: dict[str, Any],
    now: datetime | None = None,
    trace_id: str | None | EllipsisType = ...,
) -> None:
    """A new clock is announced (at ``now``, else the clock's time; under ``trace_id``, else
    the one in force); the scanner is woken if it falls due before its plan."""
    started = DeadlineSet.of(deadline_fields(row))
    uow.emit(
        started.outgoing(producer=PRODUCER, occurred_at=now or ctx.clock.now(), trace_id=trace_id)
    )
    sla = state(ctx)
    if sla.wake_for(row["next_due_at"]):
        uow.after_commit.append(sla.wake.set)


def deadline_fields(row: dict[str, Any]) -> dict[str, Any]:
    """``sla.deadline_set``'s fields of a new clock's row."""
    return {
        "ticket_id": row["ticket_id"],
        "clock": row["kind"].value,
        "round": row["round"],
        "dispatch_no": row["dispatch_no"],
        "unit_id": row["unit_id"],
        "started_at": row["started_at"],
        "deadline": row["deadline"],
        "period": row["period"],
        "provisional": row["provisional"],
    }


def deadline_json(row: dict[str, Any]) -> bytes | None:
    """``sla.deadline_set``'s payload JSON of a new clock's row, the bytes its model writes
    (``DeadlineSet.of(deadline_fields(row))``'s), written by orjson without the model
    (~2 us a clock): each value of a type both write alike, a text, a whole number, a
    bool, null or an aware time whose offset is whole minutes (RFC 3339, ``Z`` for UTC;
    the two round an offset of seconds differently). None when one is not: the model
    then validates the fields (or refuses them). tests/unit/sla holds the two equal.

    Each value read from the row once, checked and written from there (the kind as its
    text from ``_KIND_TEXT``, not through the enum's ``value``; a UTC time taken as it is):
    ~0.6 us a clock less than ``deadline_fields``' dict and a second read of each value."""
    ticket_id, kind, round_, dispatch_no = (
        row["ticket_id"],
        row["kind"],
        row["round"],
        row["dispatch_no"],
    )
    unit, started, deadline = row["unit_id"], row["started_at"], row["deadline"]
    period, provisional = row["period"], row["provisional"]
    if (
        type(ticket_id) is str
        and type(kind) is ClockKind
        and type(round_) is int
        and type(dispatch_no) is int
        and (unit is None or type(unit) is str)
        and type(period) is str
        and type(provisional) is bool
        and type(started) is datetime
        and (started.tzinfo is UTC or _written_time(started))
        and type(deadline) is datetime
        and (deadline.tzinfo is UTC or _written_time(deadline))
        and -_INT_LIMIT < round_ < _INT_LIMIT
        and -_INT_LIMIT < dispatch_no < _INT_LIMIT
    ):
        return dumps(
            {
                "ticket_id": ticket_id,
                "clock": _KIND_TEXT[kind],
                "round": round_,
                "dispatch_no": dispatch_no,
                "unit_id": unit,
                "started_at": started,
                "deadline": deadline,
                "period": period,
                "provisional": provisional,
            },
            option=OPT_UTC_Z,
        )
    return None


# each kind's text, as ``deadline_fields`` writes it (``ClockKind.value``)
_KIND_TEXT = {kind: kind.value for kind in ClockKind}


def _written_time(at: Any) -> bool:
    """Whether orjson writes ``at`` as the model does (``deadline_json``)."""
    if type(at) is not datetime:
        return False
    if at.tzinfo is UTC:
        return True
    offset = at.utcoffset()
    return offset is not None and not offset % _MINUTE


_MINUTE = timedelta(minutes=1)
# orjson writes integers of 64 bits at most
_INT_LIMIT = 2**63


# what an insert of clocks returns: the key of each clock inserted (``clock_key``)
CLOCK_KEY = (clocks.c.ticket_id, clocks.c.kind, clocks.c.round, clocks.c.dispatch_no)


def clocks_started(
    ctx: ServiceContext,
    uow: UnitOfWork,
    rows: list[dict[str, Any]],
    inserted: list[Any],
    traces: Sequence[str | None] = (),
) -> None:
    """Of the clocks ``rows`` an insert was given, those it inserted (``CLOCK_KEY`` rows)
    are announced: the same fact under another event id (a producer retry) must not start
    a second clock. ``traces``: the trace id of each row's event (a set-based run's: each
    announcement carries its own ticket's, as one by one), else the one in force. An insert
    returns a row for each row it inserted, so as many as it was given are all of them."""
    now = ctx.clock.now()  # the announcements of one write share their time
    if len(inserted) == len(rows):  # each row inserted (as nearly always): no keys compared
        new, new_traces = rows, traces
    else:
        keys = {clock_key(r) for r in inserted}
        taken = [i for i, row in enumerate(rows) if clock_key(row) in keys]
        new = [rows[i] for i in taken]
        new_traces = [traces[i] for i in taken] if traces else ()
    if not traces:  # under the trace id in force
        for row in new:
            clock_started(ctx, uow, row, now)
        return
    if not new:
        return
    # a run's announcements made together, each its own trace id: their payloads written
    # here (``deadline_json``), else validated and written by the model (``outgoing_run``)
    announced = DeadlineSet.outgoing_rows_run(
        new,
        written=deadline_json,
        fields=deadline_fields,
        producer=PRODUCER,
        occurred_at=now,
        trace_ids=new_traces,
    )
    uow.emit(*announced)
    sla = state(ctx)
    if any(sla.wake_for(row["next_due_at"]) for row in new):
        uow.after_commit.append(sla.wake.set)


async def start_clocks(
    ctx: ServiceContext,
    uow: UnitOfWork,
    rows: list[dict[str, Any]],
    traces: Sequence[str | None] = (),
) -> None:
    """Insert new clocks in one statement; only those inserted are announced."""
    inserted = await insert_new(uow.conn, clocks, rows, *CLOCK_KEY)
    clocks_started(ctx, uow, rows, inserted, traces)


async def start_clock(ctx: ServiceContext, uow: UnitOfWork, **clock: Any) -> None:
    row = new_clock(ctx, **clock)
    inserted = await uow.conn.execute(insert_ignoring_duplicates(uow.conn, clocks).values(row))
    if inserted.rowcount:
        clock_started(ctx, uow, row)


async def stop_clock(
    uow: UnitOfWork, ticket_id: str, kind: ClockKind, at: datetime, round_: int | None = None
) -> None:
    """The event that meets a clock stops it (late or not)."""
    query = update(clocks).where(clocks.c.ticket_id == ticket_id, clocks.c.kind == kind, *RUNNING)
    if round_ is not None:
        query = query.where(clocks.c.round == round_)
    await uow.conn.execute(query.values(stopped_at=at, next_due_at=None))


def registered_ticket(event: TicketRegistered | RegisteredView) -> dict[str, Any]:
    return {
        "ticket_id": event.ticket_id,
        "urgency": event.urgency,
        "type": event.type,
        "district": event.district,
        "round": 1,
        "registered_at": event.registered_at,
    }


def dispatch_clock(
    ctx: ServiceContext, event: TicketRegistered | RegisteredView, timings: Timings | None = None
) -> dict[str, Any]:
    """Art 6: dispatch within 24 h (general) or at once (urgent classes), from registration."""
    return new_clock(
        ctx,
        ticket_id=event.ticket_id,
        kind=ClockKind.DISPATCH,
        round_=1,
        dispatch_no=1,
        urgency=event.urgency,
        started_at=event.registered_at,
        unit_id=None,
        district=event.district,
        timings=timings,
    )


async def on_registered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketRegistered)
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, tickets).values(registered_ticket(event))
    )
    await start_clocks(ctx, uow, [dispatch_clock(ctx, event)])


async def on_answered(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Art 6: answered on the spot — nothing left to dispatch."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketAnswered)
    await stop_clock(uow, event.ticket_id, ClockKind.DISPATCH, event.answered_at)


def dispatched_ticket(event: TicketDispatched) -> dict[str, Any]:
    return {
        "ticket_id": event.ticket_id,
        "unit_id": event.unit_id,
        "statutory_period": event.statutory_period,
        "round": event.round,
    }


def acceptance_clock(
    ctx: ServiceContext, event: TicketDispatched, timings: Timings | None = None
) -> dict[str, Any]:
    """Art 9, 11: acceptance is measured from (each) dispatch; a re-handling round (Art 14)
    gets the class's periods again, counted from the re-dispatch."""
    return new_clock(
        ctx,
        ticket_id=event.ticket_id,
        kind=ClockKind.ACCEPTANCE,
        round_=event.round,
        dispatch_no=event.dispatch_no,
        urgency=event.urgency,
        started_at=event.dispatched_at,
        unit_id=event.unit_id,
        district=event.district,
        timings=timings,
    )


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketDispatched)
    values = dispatched_ticket(event)
    await uow.conn.execute(
        update(tickets).where(tickets.c.ticket_id == values.pop("ticket_id")).values(values)
    )
    await stop_clock(uow, event.ticket_id, ClockKind.DISPATCH, event.dispatched_at)
    await start_clocks(ctx, uow, [acceptance_clock(ctx, event)])


async def on_return_approved(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Art 10: an approved return restarts every clock from the new dispatch, so the
    running ones are cancelled (a rejected return changes nothing)."""
    event = parse_payload(envelope)
    assert isinstance(event, ReturnApproved)
    await uow.conn.execute(
        update(clocks)
        .where(clocks.c.ticket_id == event.ticket_id, *RUNNING)
        .where(clocks.c.kind != ClockKind.DISPATCH)
        .values(cancelled_at=event.decided_at, next_due_at=None)
    )


async def on_accepted(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketAccepted)
    ticket = (
        await uow.conn.execute(select(tickets).where(tickets.c.ticket_id == event.ticket_id))
    ).one()
    acceptance = (
        await uow.conn.execute(
            select(clocks.c.dispatch_no, clocks.c.district)
            .where(
                clocks.c.ticket_id == event.ticket_id,
                clocks.c.kind == ClockKind.ACCEPTANCE,
                clocks.c.round == event.round,
                clocks.c.cancelled_at.is_(None),
            )
            .order_by(clocks.c.dispatch_no.desc())
        )
    ).first()
    await stop_clock(
        uow, event.ticket_id, ClockKind.ACCEPTANCE, event.accepted_at, round_=event.round
    )
    # Art 11: completion is measured from acceptance ("接收工单后").
    await start_clock(
        ctx,
        uow,
        ticket_id=event.ticket_id,
        kind=ClockKind.COMPLETION,
        round_=event.round,
        dispatch_no=acceptance.dispatch_no if acceptance else 1,
        urgency=ticket.urgency,
        started_at=event.accepted_at,
        unit_id=event.unit_id,
        district=ticket.district,
        statutory_period=ticket.statutory_period,
    )


async def on_completed(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    event = parse_payload(envelope)
    assert isinstance(event, TicketCompleted)
    await stop_clock(
        uow, event.ticket_id, ClockKind.COMPLETION, event.completed_at, round_=event.round
    )
