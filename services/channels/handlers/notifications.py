"""Notifications to citizens and units by SMS and WeChat template message: queued from
events in the consumer's transaction (one row per event, medium and recipient: never
twice), held back during quiet hours unless urgent, sent through the providers with
back-off, failures kept and reported (``channel.notification_failed``)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select, update

from services.channels.domain import (
    CITIZEN_PURPOSES,
    CLOCK_WORDS,
    UNIT_PURPOSES,
    Purpose,
    after_quiet_hours,
    citizen_link,
    is_urgent,
    parse_quiet_hours,
    render,
)
from services.channels.handlers.outgoing import (
    Circuits,
    Reachability,
    attempt_outcome,
    circuit_samples,
    claim_due,
    guarded,
    next_due,
    run_sender,
    wake_of,
)
from services.channels.handlers.providers import PROVIDERS
from services.channels.models import (
    channel_tickets,
    notifications,
    opt_outs,
    unit_contacts,
    unit_staff_phones,
)
from services.channels.schemas import (
    NotificationPublic,
    NotificationsPublic,
    OptOut,
    UnitContacts,
)
from shared.auth import Caller
from shared.calendar import SHANGHAI
from shared.db import UnitOfWork, insert_ignoring_duplicates, rows_in
from shared.events import Envelope, NotificationFailed, UnitStaffPublished, parse_payload
from shared.metrics import Sample
from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.notifications")
PRODUCER = "channels"
SENDER = "notifications"


def _local(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    from datetime import datetime

    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%m月%d日%H:%M")


async def queue(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    event_id: str,
    ticket_id: str | None,
    purpose: Purpose,
    medium: str,
    recipient: str,
    params: dict[str, str],
    urgent: bool,
) -> None:
    """One notification, unless it exists already (the same event told twice)."""
    now = ctx.clock.now()
    provider = PROVIDERS[medium]
    opted_out = await uow.conn.scalar(
        select(func.count())
        .select_from(opt_outs)
        .where(opt_outs.c.medium == medium, opt_outs.c.recipient == recipient)
    )
    skipped = "the recipient opted out" if opted_out else provider.not_configured(ctx.settings)
    send_at = (
        now
        if urgent
        else after_quiet_hours(now, parse_quiet_hours(ctx.settings.notify_quiet_hours), SHANGHAI)
    )
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, notifications).values(
            notification_id=str(uuid.uuid4()),
            event_id=event_id,
            ticket_id=ticket_id,
            purpose=purpose.value,
            medium=medium,
            recipient=recipient,
            text=render(purpose, params),
            params=params,
            urgent=urgent,
            status="skipped" if skipped else "pending",
            last_error=skipped,
            created_at=now,
            next_attempt_at=None if skipped else send_at,
            give_up_at=send_at + timedelta(hours=ctx.settings.delivery_window_hours),
        )
    )
    if not skipped:
        uow.after_commit.append(wake_of(ctx, SENDER).event.set)


async def notify_citizen(
    ctx: ServiceContext,
    uow: UnitOfWork,
    event_id: str,
    ticket: Any,
    purpose: Purpose,
    extra: dict[str, str] | None = None,
) -> None:
    """Tell the requester through every way the channel knows them by."""
    params = {
        "ticket_id": ticket.ticket_id,
        "link": citizen_link(ctx.settings.citizen_ticket_url, ticket.ticket_id),
        **(extra or {}),
    }
    for medium, recipient in (("wechat", ticket.openid), ("sms", ticket.phone)):
        if recipient:
            await queue(
                ctx,
                uow,
                event_id=event_id,
                ticket_id=ticket.ticket_id,
                purpose=purpose,
                medium=medium,
                recipient=recipient,
                params=params,
                urgent=False,
            )


async def ticket_filed(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    ticket_id: str,
    account_id: str,
    channel: str,
    openid: str | None = None,
    phone: str | None = None,
) -> None:
    """A ticket an adapter filed (or learnt of, as the CTI's call): remember how its
    requester is reached, and send them its number once."""
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, channel_tickets).values(
            ticket_id=ticket_id,
            account_id=account_id,
            channel=channel,
            openid=openid,
            phone=phone,
            status="open",
            registered_at=ctx.clock.now(),
        )
    )
    ticket = (
        await uow.conn.execute(
            select(channel_tickets).where(channel_tickets.c.ticket_id == ticket_id)
        )
    ).one()
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotline:registered:{ticket_id}"))
    await notify_citizen(ctx, uow, event_id, ticket, Purpose.REGISTERED)


# every type ``on_event`` may queue a notification for (``takes_from`` tells for each event)
TAKEN = frozenset({UnitStaffPublished.TYPE, *CITIZEN_PURPOSES, *UNIT_PURPOSES})


def takes_from(envelope: Envelope) -> bool:
    """Whether ``on_event`` may queue a notification (or learn a unit's staff) for
    ``envelope``."""
    if envelope.type == UnitStaffPublished.TYPE:
        return True
    if envelope.ticket_id is None:
        return False
    if envelope.type in CITIZEN_PURPOSES:
        return True
    return envelope.type in UNIT_PURPOSES and not _unit_less_clock(envelope)


def _unit_less_clock(envelope: Envelope) -> bool:
    """The dispatch clock is the hotline's own, not a unit's: nobody is told of it."""
    return envelope.type.startswith("sla.") and not envelope.payload.get("unit_id")


async def on_event(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    ticket_id, payload = envelope.ticket_id, envelope.payload
    if envelope.type == UnitStaffPublished.TYPE:
        await _staff_named(uow, envelope)
        return
    if ticket_id is None:
        return
    event_id = str(envelope.event_id)
    purpose = CITIZEN_PURPOSES.get(envelope.type)
    if purpose is not None:
        ticket = (
            await uow.conn.execute(
                select(channel_tickets).where(channel_tickets.c.ticket_id == ticket_id)
            )
        ).first()
        if ticket is not None:
            reply = payload.get("reply") or {}
            await notify_citizen(
                ctx, uow, event_id, ticket, purpose, {"result": str(reply.get("result", ""))}
            )
    purpose = UNIT_PURPOSES.get(envelope.type)
    if purpose is None:
        return
    if _unit_less_clock(envelope):
        return
    units = {u for u in (payload.get("unit_id"),) if u}
    params = {
        "ticket_id": ticket_id,
        "clock": CLOCK_WORDS.get(str(payload.get("clock")), ""),
        "due_at": _local(payload.get("deadline")),
    }
    urgent = is_urgent(purpose, payload.get("urgency"))
    contacts, staff = await _recipients(uow, units)
    phones = list(
        dict.fromkeys(
            [p for c in contacts for p in c.phones] + [p for s in staff for p in s.phones]
        )
    )
    openids = list(dict.fromkeys(o for c in contacts for o in c.wechat_openids))
    if contacts or staff:
        for medium, recipients in (("sms", phones), ("wechat", openids)):
            for recipient in recipients:
                await queue(
                    ctx,
                    uow,
                    event_id=event_id,
                    ticket_id=ticket_id,
                    purpose=purpose,
                    medium=medium,
                    recipient=recipient,
                    params=params,
                    urgent=urgent,
                )


RECIPIENTS = "channels.unit_recipients"
_STAFF_PHONES = (unit_staff_phones.c.unit_id, unit_staff_phones.c.phones)


async def _recipients(uow: UnitOfWork, units: set[str]) -> tuple[list[Any], list[Any]]:
    """The units' contacts and named staff: read here, or read ahead for a whole run of
    events by ``on_dispatched``."""
    ahead: dict[str, tuple[list[Any], list[Any]]] | None = uow.memo.get(RECIPIENTS)
    if ahead is None or not units <= ahead.keys():
        ahead = await _read_recipients(uow, units)
    contacts = [c for u in sorted(units) for c in ahead[u][0]]
    staff = [s for u in sorted(units) for s in ahead[u][1]]
    return contacts, staff


async def _read_recipients(
    uow: UnitOfWork, units: set[str]
) -> dict[str, tuple[list[Any], list[Any]]]:
    found: dict[str, tuple[list[Any], list[Any]]] = {u: ([], []) for u in units}
    for c in await rows_in(uow.conn, (unit_contacts,), unit_contacts.c.unit_id, units):
        found[c.unit_id][0].append(c)
    for s in await rows_in(uow.conn, _STAFF_PHONES, unit_staff_phones.c.unit_id, units):
        found[s.unit_id][1].append(s)
    return found


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    """``on_event`` for many ``ticket.dispatched`` at once: the units' recipients are read
    once for all of them (nothing in the run can change them), and a work order whose unit
    has nobody to tell (no contact, no named staff with a phone: most units) is passed over
    here, as ``on_event`` would leave it, without its message's making (~4 us an event)."""
    ahead = uow.memo[RECIPIENTS] = await _read_recipients(
        uow, {u for e in batch for u in (e.payload.get("unit_id"),) if u}
    )
    try:
        for envelope in batch:
            unit = envelope.payload.get("unit_id")
            if unit and ahead[unit] != _NOBODY:
                await on_event(ctx, uow, envelope)
    finally:
        del uow.memo[RECIPIENTS]


# a unit's recipients when it has none (``_read_recipients``)
_NOBODY: tuple[list[Any], list[Any]] = ([], [])


async def _staff_named(uow: UnitOfWork, envelope: Envelope) -> None:
    """Art 4: the unit's named staff with a work phone are told of its work orders."""
    event = parse_payload(envelope)
    assert isinstance(event, UnitStaffPublished)
    phones = list(dict.fromkeys(m.phone for m in event.staff if m.phone))
    await uow.conn.execute(
        delete(unit_staff_phones).where(unit_staff_phones.c.unit_id == event.unit_id)
    )
    await uow.conn.execute(
        unit_staff_phones.insert().values(
            unit_id=event.unit_id, phones=phones, updated_at=envelope.occurred_at
        )
    )


# ---- the sender ------------------------------------------------------------------------


def _providers(ctx: ServiceContext) -> Reachability:
    """The providers' outages (logged) and circuits (one per medium)."""
    return guarded(ctx, SENDER, log, "notification provider", "medium", "notifications")


def _circuits(ctx: ServiceContext) -> Circuits:
    return Circuits.of(_providers(ctx), notifications.c.medium)


def provider_circuits(ctx: ServiceContext) -> list[Sample]:
    """For /metrics: each configured provider's circuit."""
    configured = [m for m, p in PROVIDERS.items() if p.not_configured(ctx.settings) is None]
    return circuit_samples(SENDER, _circuits(ctx).breaker, configured)


async def _send(ctx: ServiceContext, http: httpx.AsyncClient, row: Any) -> None:
    started = time.monotonic()
    provider = PROVIDERS[row.medium]
    status_code, error = await provider.send(ctx.settings, http, row)
    # a provider that cannot be reached logs when that starts and ends, not per message;
    # the message's attempts are in its row (never its recipient or text in the log)
    if not _providers(ctx).tried(row.medium, row.notification_id, status_code, error):
        what = {
            "notification": row.notification_id,
            "medium": row.medium,
            "purpose": row.purpose,
            "ms": int((time.monotonic() - started) * 1000),
        }
        if error is None:
            log.info("notification sent", extra=what)
        else:
            log.warning(
                "notification refused by the provider", extra={**what, "status": status_code}
            )
    outcome = attempt_outcome(
        ctx, row, status_code, error, done=("sent", "sent_at"), given_up=("failed", "failed_at")
    )
    async with ctx.db.unit_of_work() as uow:
        if outcome.gave_up:
            now = ctx.clock.now()
            uow.emit(
                NotificationFailed(
                    notification_id=row.notification_id,
                    ticket_id=row.ticket_id,
                    purpose=row.purpose,
                    medium=row.medium,
                    attempts=outcome.attempts,
                    last_status_code=status_code,
                    last_error=error,
                    failed_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now, ticket_id=row.ticket_id)
            )
        await uow.conn.execute(
            update(notifications)
            .where(notifications.c.notification_id == row.notification_id)
            .values(outcome.values)
        )


async def notification_sender(ctx: ServiceContext) -> None:
    """Background loop sending notifications as they fall due."""
    async with httpx.AsyncClient(
        timeout=ctx.settings.delivery_timeout_seconds, trust_env=False, follow_redirects=False
    ) as http:

        async def send_due() -> bool:
            due = await claim_due(
                ctx, notifications, notifications.c.notification_id, _circuits(ctx)
            )
            await asyncio.gather(*(_send(ctx, http, row) for row in due))
            return bool(due)

        await run_sender(
            ctx, SENDER, send_due, lambda: next_due(ctx, notifications, _circuits(ctx))
        )


# ---- the API: failures visible, unit contacts, opt-outs ---------------------------------------


def _public(row: Any) -> NotificationPublic:
    return NotificationPublic.model_validate(row._mapping)


async def list_notifications(
    ctx: ServiceContext, *, status: str | None, ticket_id: str | None, limit: int, offset: int
) -> NotificationsPublic:
    conds = []
    if status is not None:
        conds.append(notifications.c.status == status)
    if ticket_id is not None:
        conds.append(notifications.c.ticket_id == ticket_id)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(notifications).where(*conds))
        rows = (
            await conn.execute(
                select(notifications)
                .where(*conds)
                .order_by(notifications.c.created_at.desc(), notifications.c.notification_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return NotificationsPublic(data=[_public(r) for r in rows], count=count or 0)


async def set_unit_contacts(
    ctx: ServiceContext, caller: Caller, unit_id: str, data: UnitContacts
) -> UnitContacts:
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(delete(unit_contacts).where(unit_contacts.c.unit_id == unit_id))
        await uow.conn.execute(
            unit_contacts.insert().values(
                unit_id=unit_id,
                phones=data.phones,
                wechat_openids=data.wechat_openids,
                updated_at=now,
                updated_by=caller.sub,
            )
        )
    return data


async def opt_out(ctx: ServiceContext, data: OptOut) -> None:
    async with ctx.db.unit_of_work() as uow:
        await set_opt_out(ctx, uow, data.medium, data.recipient, out=True)


async def set_opt_out(
    ctx: ServiceContext, uow: UnitOfWork, medium: str, recipient: str, *, out: bool
) -> None:
    """A recipient stops (or resumes) receiving messages; what is waiting is dropped."""
    await uow.conn.execute(
        delete(opt_outs).where(opt_outs.c.medium == medium, opt_outs.c.recipient == recipient)
    )
    if not out:
        return
    await uow.conn.execute(
        opt_outs.insert().values(medium=medium, recipient=recipient, opted_out_at=ctx.clock.now())
    )
    await uow.conn.execute(
        update(notifications)
        .where(
            notifications.c.medium == medium,
            notifications.c.recipient == recipient,
            notifications.c.status == "pending",
        )
        .values(status="skipped", last_error="the recipient opted out", next_attempt_at=None)
    )
