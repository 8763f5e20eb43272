"""The scanner: acts on every clock whose next action is due — warning, overdue, level-1
and level-2 escalation — each exactly once, in the transaction that records it."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, text, update

from services.sla.domain import next_due, second_escalation_at
from services.sla.handlers.clocks import PRODUCER
from services.sla.handlers.state import reload_state, state
from services.sla.models import clocks
from shared.aio import IdlePoll, act_if_due
from shared.calendar import Period
from shared.events import ClockWarning, Escalated, Outgoing, Overdue
from shared.logging import Outage
from shared.metrics import Sample
from shared.service import ServiceContext

log = logging.getLogger("hotline.sla")
SCAN_BATCH = 500
# The scanner looks by itself for clocks another instance started (its own process's wake
# it when due sooner than it planned to look): IDLE_POLL_SECONDS after it last acted, then
# twice as long after each look that found nothing, up to IDLE_POLL_MAX_SECONDS. A clock
# starts minutes before its first due time (the shortest statutory period, 15 minutes, warns
# at 75 %), and the instance that started it acts on it too; the longest wait only delays
# a clock whose instance stopped before its first due time came and which is due within
# IDLE_POLL_MAX_SECONDS of being stored (started late, a backlog): by up to that much.
IDLE_POLL_SECONDS = 0.5
IDLE_POLL_MAX_SECONDS = 8.0
RELOAD_SECONDS = 15.0


def _act(row: Any, now: datetime, ctx: ServiceContext) -> tuple[dict[str, Any], list[Outgoing]]:
    """What is due on one clock now: the row's new values and the events to emit."""
    sla = state(ctx)
    values: dict[str, Any] = {
        "_id": row.id,
        "warned_at": row.warned_at,
        "overdue_at": row.overdue_at,
        "escalation_level": row.escalation_level,
        "escalate_at": row.escalate_at,
    }
    events: list[Outgoing] = []
    common = {
        "ticket_id": row.ticket_id,
        "clock": row.kind,
        "round": row.round,
        "dispatch_no": row.dispatch_no,
        "unit_id": row.unit_id,
        "deadline": row.deadline,
    }
    if row.overdue_at is None and now < row.deadline:
        if row.warned_at is None:
            values["warned_at"] = now
            events.append(
                ClockWarning(**common, warned_at=now).outgoing(producer=PRODUCER, occurred_at=now)
            )
    elif row.overdue_at is None:
        # A warning not yet given when the deadline has already passed is not sent late.
        values["warned_at"] = row.warned_at or now
        values["overdue_at"] = now
        values["escalation_level"] = 1
        values["escalate_at"] = second_escalation_at(
            sla.calendar, row.deadline, Period.parse(row.period)
        )
        events.append(
            Overdue(
                **common, detected_at=now, late_seconds=(now - row.deadline).total_seconds()
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
        events.append(
            Escalated(**common, level=1, supervision_kind="ticket", escalated_at=now).outgoing(
                producer=PRODUCER, occurred_at=now
            )
        )
    if (
        values["escalation_level"] == 1
        and values["escalate_at"] is not None
        and values["escalate_at"] <= now
    ):
        values["escalation_level"] = 2
        events.append(
            Escalated(**common, level=2, supervision_kind="written", escalated_at=now).outgoing(
                producer=PRODUCER, occurred_at=now
            )
        )
    values["next_due_at"] = next_due(
        deadline=row.deadline,
        warn_at=row.warn_at,
        warned=values["warned_at"] is not None,
        overdue=values["overdue_at"] is not None,
        escalate_at=values["escalate_at"],
        level=values["escalation_level"],
        stopped=False,
    )
    return values, events


_UPDATE = (
    update(clocks)
    .where(clocks.c.id == bindparam("_id"))
    .values(
        warned_at=bindparam("warned_at"),
        overdue_at=bindparam("overdue_at"),
        escalation_level=bindparam("escalation_level"),
        escalate_at=bindparam("escalate_at"),
        next_due_at=bindparam("next_due_at"),
    )
)


_ARRAYS = {
    "ids": "_id",
    "warned": "warned_at",
    "overdue": "overdue_at",
    "levels": "escalation_level",
    "escalate": "escalate_at",
    "next_due": "next_due_at",
}
_UPDATE_ALL_PG = text(
    "UPDATE clocks AS c SET warned_at = v.warned_at, overdue_at = v.overdue_at, "
    "escalation_level = v.escalation_level, escalate_at = v.escalate_at, "
    "next_due_at = v.next_due_at "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:warned AS timestamptz[]), "
    "CAST(:overdue AS timestamptz[]), CAST(:levels AS integer[]), "
    "CAST(:escalate AS timestamptz[]), CAST(:next_due AS timestamptz[])) "
    "AS v(id, warned_at, overdue_at, escalation_level, escalate_at, next_due_at) "
    "WHERE c.id = v.id"
)


async def act_on_due(ctx: ServiceContext) -> int:
    """One batch of due clocks. A clock is locked while acted on (two instances skip each
    other's rows) and its new state commits with its events, so nothing is sent twice and
    nothing is lost across a crash."""
    now = ctx.clock.now()
    due = (
        select(clocks)
        .where(clocks.c.next_due_at.is_not(None), clocks.c.next_due_at <= now)
        .order_by(clocks.c.next_due_at)
        .limit(SCAN_BATCH)
    )
    if ctx.db.is_postgres:
        due = due.with_for_update(skip_locked=True)
    async with ctx.db.unit_of_work() as uow:
        rows = (await uow.conn.execute(due)).all()
        if not rows:
            return 0
        changes = [_act(row, now, ctx) for row in rows]
        if ctx.db.is_postgres:
            # one statement for the whole batch instead of one per clock
            columns = [values for values, _ in changes]
            await uow.conn.execute(
                _UPDATE_ALL_PG,
                {name: [c[key] for c in columns] for name, key in _ARRAYS.items()},
            )
        else:
            await uow.conn.execute(_UPDATE, [values for values, _ in changes])
        for _, events in changes:
            uow.emit(*events)
    return len(rows)


_NEXT_DUE = select(func.min(clocks.c.next_due_at))


async def next_due_at(ctx: ServiceContext) -> datetime | None:
    due: datetime | None = await ctx.db.scalar(_NEXT_DUE)
    return due


async def scanner(ctx: ServiceContext) -> None:
    """Sleeps until the next due action (or a new clock, or a moved test clock), then acts.
    A million waiting clocks cost one index lookup per wake-up."""
    sla = state(ctx)
    reloaded = time.monotonic()
    outage = Outage(log, "clock scan")
    poll = IdlePoll(IDLE_POLL_SECONDS, IDLE_POLL_MAX_SECONDS)
    while True:
        try:
            if time.monotonic() - reloaded > RELOAD_SECONDS:
                await reload_state(ctx)
                reloaded = time.monotonic()
            acted, upcoming = await act_if_due(
                ctx.clock.now, lambda: next_due_at(ctx), lambda: act_on_due(ctx)
            )
            outage.ok()
            if acted:
                poll.found()
                continue
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged when it starts and when it ends
            await asyncio.sleep(outage.failed())
            continue
        sla.wake.clear()
        # a new clock due before this wakes the scanner; later ones wait for the idle poll
        seconds = poll.wait()
        idle = ctx.clock.now() + timedelta(seconds=seconds)
        sla.planned_wake = wake_at = min(upcoming, idle) if upcoming is not None else idle
        # the idle look is also a time on the service's clock: a controllable clock moved past
        # it (the console's demo, the browser tests) wakes the scanner at once, not after up to
        # IDLE_POLL_MAX_SECONDS of real time; the real time's passing wakes it as before (a
        # frozen test clock never gets there by itself)
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(sla.wake.wait()),
            asyncio.ensure_future(ctx.clock.sleep_until(wake_at)),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sla.planned_wake = None
            for waiter in waits:
                waiter.cancel()


async def sla_metrics(ctx: ServiceContext) -> list[Sample]:
    """For /metrics: open clocks by state, and how late the scanner is on the oldest due
    action (0 when nothing is due: the scanner keeps up)."""
    now = ctx.clock.now()
    state_of = case(
        (clocks.c.overdue_at.is_not(None), "overdue"),
        (clocks.c.warned_at.is_not(None), "warned"),
        else_="running",
    )
    async with ctx.db.engine.connect() as conn:
        by_state: dict[str, int] = dict(
            (
                await conn.execute(
                    select(state_of, func.count())
                    .where(clocks.c.stopped_at.is_(None), clocks.c.cancelled_at.is_(None))
                    .group_by(state_of)
                )
            ).all()
        )
        oldest_due = await conn.scalar(
            select(func.min(clocks.c.next_due_at)).where(clocks.c.next_due_at <= now)
        )
    doc = "clocks neither met nor cancelled, by state"
    samples: list[Sample] = [
        ("hotline_sla_open_clocks", doc, {"state": s}, float(by_state.get(s, 0)))
        for s in ("running", "warned", "overdue")
    ]
    lag = (now - oldest_due).total_seconds() if oldest_due is not None else 0.0
    samples.append(
        ("hotline_sla_scanner_lag_seconds", "age of the oldest due clock action", {}, lag)
    )
    return samples
