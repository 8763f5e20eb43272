"""Due times, acted on by the shared clock: expiry reminders and automatic withdrawal at
the end of validity (Art 19), overdue update requests (Art 17).

Every due time lives in the database. Each action changes the row and writes its event in
one transaction, and a changed row no longer matches its query, so each event goes out
once; two instances skip each other's locked rows (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update

from services.knowledge.domain import EntryStatus, RequestStatus
from services.knowledge.handlers.common import PRODUCER, record_version, state
from services.knowledge.models import entries, update_requests
from shared.aio import IdlePoll, act_if_due
from shared.events import KnowledgeExpired, KnowledgeExpiring, KnowledgeRequestOverdue
from shared.logging import Outage
from shared.service import ServiceContext

log = logging.getLogger("hotline.knowledge")
SCAN_BATCH = 500
SYSTEM = "system"
# The scanner looks by itself for due times another instance stored (this process's own
# changes wake it): IDLE_POLL_SECONDS after it last acted, then twice as long after each
# look that found nothing, up to IDLE_POLL_MAX_SECONDS. The instance that stored a due time
# acts on it too; the longest wait only delays one due within IDLE_POLL_MAX_SECONDS of being
# stored by an instance that stopped before it came (validity and answers run for days).
IDLE_POLL_SECONDS = 0.5
IDLE_POLL_MAX_SECONDS = 8.0

_PUBLISHED = entries.c.status == EntryStatus.PUBLISHED.value
_OPEN_REQUEST = (
    update_requests.c.status == RequestStatus.OPEN.value,
    update_requests.c.overdue_at.is_(None),
)


def _locked(ctx: ServiceContext, stmt: Select[Any]) -> Select[Any]:
    return stmt.with_for_update(skip_locked=True) if ctx.db.is_postgres else stmt


async def expire_entries(ctx: ServiceContext) -> int:
    """Art 19: at ``valid_until`` a published entry is withdrawn automatically."""
    now = ctx.clock.now()
    due = (
        select(entries)
        .where(_PUBLISHED, entries.c.valid_until <= now)
        .order_by(entries.c.valid_until)
        .limit(SCAN_BATCH)
    )
    async with ctx.db.unit_of_work() as uow:
        rows = (await uow.conn.execute(_locked(ctx, due))).all()
        for row in rows:
            old = dict(row._mapping)
            after = {
                "status": EntryStatus.EXPIRED.value,
                "expired_at": now,
                "remind_at": None,
                "version": old["version"] + 1,
                "updated_at": now,
                "updated_by": SYSTEM,
            }
            await uow.conn.execute(
                update(entries).where(entries.c.entry_id == old["entry_id"]).values(after)
            )
            await record_version(
                uow.conn,
                entry_id=old["entry_id"],
                version=after["version"],
                change="expired",
                at=now,
                by=SYSTEM,
                before=old,
                after=after,
                note="validity ended (Art 19)",
            )
            uow.emit(
                KnowledgeExpired(
                    entry_id=old["entry_id"],
                    unit_id=old["unit_id"],
                    title=old["title"],
                    valid_until=old["valid_until"],
                    expired_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
    return len(rows)


async def send_reminders(ctx: ServiceContext) -> int:
    """Art 19: remind the owner before validity ends, once per validity period."""
    now = ctx.clock.now()
    e = entries.c
    due = (
        select(e.entry_id, e.unit_id, e.title, e.valid_until)
        .where(_PUBLISHED, e.remind_at.is_not(None), e.remind_at <= now, e.valid_until > now)
        .order_by(e.remind_at)
        .limit(SCAN_BATCH)
    )
    async with ctx.db.unit_of_work() as uow:
        rows = (await uow.conn.execute(_locked(ctx, due))).all()
        if not rows:
            return 0
        await uow.conn.execute(
            update(entries)
            .where(e.entry_id.in_([r.entry_id for r in rows]))
            .values(remind_at=None, reminded_at=now)
        )
        uow.emit(
            *(
                KnowledgeExpiring(
                    entry_id=r.entry_id,
                    unit_id=r.unit_id,
                    title=r.title,
                    valid_until=r.valid_until,
                    reminded_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now)
                for r in rows
            )
        )
    return len(rows)


async def report_overdue_requests(ctx: ServiceContext) -> int:
    """Art 17: an update request not answered by its due time is reported, once."""
    now = ctx.clock.now()
    r = update_requests.c
    due = select(update_requests).where(*_OPEN_REQUEST, r.due_at <= now)
    due = due.order_by(r.due_at).limit(SCAN_BATCH)
    async with ctx.db.unit_of_work() as uow:
        rows = (await uow.conn.execute(_locked(ctx, due))).all()
        if not rows:
            return 0
        await uow.conn.execute(
            update(update_requests)
            .where(r.request_id.in_([x.request_id for x in rows]))
            .values(overdue_at=now)
        )
        uow.emit(
            *(
                KnowledgeRequestOverdue(
                    request_id=x.request_id,
                    unit_id=x.unit_id,
                    entry_id=x.entry_id,
                    action=x.action,
                    emergency=x.emergency,
                    due_at=x.due_at,
                    detected_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now)
                for x in rows
            )
        )
    return len(rows)


# the earliest reminder, end of validity and request due time, in one statement (each an
# index's first row)
_NEXT_DUE = select(
    select(func.min(entries.c.remind_at))
    .where(_PUBLISHED, entries.c.remind_at.is_not(None))
    .scalar_subquery(),
    select(func.min(entries.c.valid_until)).where(_PUBLISHED).scalar_subquery(),
    select(func.min(update_requests.c.due_at)).where(*_OPEN_REQUEST).scalar_subquery(),
)


async def next_due(ctx: ServiceContext) -> datetime | None:
    async with ctx.db.engine.connect() as conn:
        times = (await conn.execute(_NEXT_DUE)).one()
    present = [t for t in times if t is not None]
    return min(present) if present else None


async def act_on_due(ctx: ServiceContext) -> int:
    """One pass: expiry first, so an entry past its end is expired, not reminded."""
    return (
        await expire_entries(ctx) + await send_reminders(ctx) + await report_overdue_requests(ctx)
    )


async def due_scanner(ctx: ServiceContext) -> None:
    """Sleeps until the next due time (or a new one, or a moved test clock), then acts."""
    knowledge = state(ctx)
    outage = Outage(log, "knowledge due-time scan")
    poll = IdlePoll(IDLE_POLL_SECONDS, IDLE_POLL_MAX_SECONDS)
    while True:
        try:
            acted, upcoming = await act_if_due(
                ctx.clock.now, lambda: next_due(ctx), lambda: act_on_due(ctx)
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
        knowledge.wake.clear()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(knowledge.wake.wait())]
        if upcoming is not None:
            waits.append(asyncio.ensure_future(ctx.clock.sleep_until(upcoming)))
        try:
            await asyncio.wait(waits, timeout=poll.wait(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
