"""Outgoing webhooks: subscriptions by event type and unit, one delivery per event and
subscription (made in the consumer's transaction, so exactly once), sent signed, retried
with back-off for the window, then dead-lettered; a log of every attempt; redelivery."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import delete, func, insert, select, update

from services.channels.domain import (
    check_event_types,
    check_unit_scope,
    derived_secret,
    matches,
    receives,
    signature_header,
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
from services.channels.models import (
    channel_tickets,
    deliveries,
    delivery_attempts,
    subscriptions,
    ticket_units,
)
from services.channels.schemas import (
    DeliveriesPublic,
    DeliveryAttemptPublic,
    DeliveryPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionsPublic,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork, fetch_rows, insert_ignoring_duplicates, insert_new
from shared.errors import IllegalTransition, NotFound
from shared.events import DeliveryFailed, Envelope, TicketDispatched
from shared.metrics import Sample
from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.webhooks")
PRODUCER = "channels"
SECRET_PURPOSE = "webhook"
SIGNATURE_HEADER = "X-Hotline-Signature"
SENDER = "webhooks"


def secret_of(ctx: ServiceContext, subscription_id: str) -> str:
    return derived_secret(ctx.settings.channels_secret, SECRET_PURPOSE, subscription_id)


# ---- subscriptions ---------------------------------------------------------------------


def _subscription(row: Any) -> SubscriptionPublic:
    return SubscriptionPublic(
        subscription_id=row.subscription_id,
        url=row.url,
        event_types=row.event_types,
        unit_id=row.unit_id,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


async def create_subscription(
    ctx: ServiceContext, caller: Caller, data: SubscriptionCreate
) -> SubscriptionCreated:
    unit_id = check_unit_scope(caller.role.value, caller.unit_id, data.unit_id)
    public = SubscriptionPublic(
        subscription_id=str(uuid.uuid4()),
        url=data.url,
        event_types=check_event_types(data.event_types),
        unit_id=unit_id,
        created_at=ctx.clock.now(),
        created_by=caller.sub,
    )
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(insert(subscriptions).values(public.model_dump()))
    return SubscriptionCreated(**public.model_dump(), secret=secret_of(ctx, public.subscription_id))


def _visible(caller: Caller) -> list[Any]:
    return [subscriptions.c.unit_id == caller.unit_id] if caller.role is Role.UNIT else []


async def list_subscriptions(ctx: ServiceContext, caller: Caller) -> SubscriptionsPublic:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(subscriptions)
                .where(*_visible(caller))
                .order_by(subscriptions.c.created_at, subscriptions.c.subscription_id)
            )
        ).all()
    return SubscriptionsPublic(data=[_subscription(r) for r in rows], count=len(rows))


async def _own_subscription(conn: Any, caller: Caller, subscription_id: str) -> Any:
    row = (
        await conn.execute(
            select(subscriptions).where(subscriptions.c.subscription_id == subscription_id)
        )
    ).first()
    if row is None or (caller.role is Role.UNIT and row.unit_id != caller.unit_id):
        raise NotFound(f"no subscription {subscription_id}")
    return row


async def revoke_subscription(
    ctx: ServiceContext, caller: Caller, subscription_id: str
) -> SubscriptionPublic:
    async with ctx.db.unit_of_work() as uow:
        row = await _own_subscription(uow.conn, caller, subscription_id)
        if row.revoked_at is not None:
            raise IllegalTransition(f"subscription {subscription_id} was revoked already")
        await uow.conn.execute(
            update(subscriptions)
            .where(subscriptions.c.subscription_id == subscription_id)
            .values(revoked_at=ctx.clock.now())
        )
        # nothing more goes out for it
        await uow.conn.execute(
            update(deliveries)
            .where(
                deliveries.c.subscription_id == subscription_id, deliveries.c.status == "pending"
            )
            .values(status="dead", dead_at=ctx.clock.now(), last_error="subscription revoked")
        )
        row = await _own_subscription(uow.conn, caller, subscription_id)
    return _subscription(row)


# ---- deliveries: the log and redelivery ----------------------------------------------------


def _delivery(row: Any, log_rows: list[Any] | None = None) -> DeliveryPublic:
    return DeliveryPublic(
        delivery_id=row.delivery_id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        ticket_id=row.ticket_id,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        give_up_at=row.give_up_at,
        delivered_at=row.delivered_at,
        dead_at=row.dead_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        log=[
            DeliveryAttemptPublic(
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in log_rows or ()
        ],
    )


async def list_deliveries(
    ctx: ServiceContext,
    caller: Caller,
    *,
    subscription_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> DeliveriesPublic:
    joined = deliveries.join(
        subscriptions, subscriptions.c.subscription_id == deliveries.c.subscription_id
    )
    conds = list(_visible(caller))
    if subscription_id is not None:
        conds.append(deliveries.c.subscription_id == subscription_id)
    if status is not None:
        conds.append(deliveries.c.status == status)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(joined).where(*conds))
        rows = (
            await conn.execute(
                select(deliveries)
                .select_from(joined)
                .where(*conds)
                .order_by(deliveries.c.created_at.desc(), deliveries.c.delivery_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return DeliveriesPublic(data=[_delivery(r) for r in rows], count=count or 0)


async def _own_delivery(conn: Any, caller: Caller, delivery_id: str) -> Any:
    row = (
        await conn.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id))
    ).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    await _own_subscription(conn, caller, row.subscription_id)
    return row


async def get_delivery(ctx: ServiceContext, caller: Caller, delivery_id: str) -> DeliveryPublic:
    async with ctx.db.engine.connect() as conn:
        row = await _own_delivery(conn, caller, delivery_id)
        attempts = (
            await conn.execute(
                select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id == delivery_id)
                .order_by(delivery_attempts.c.id)
            )
        ).all()
    return _delivery(row, list(attempts))


async def redeliver(ctx: ServiceContext, caller: Caller, delivery_id: str) -> DeliveryPublic:
    """Send a dead-lettered (or delivered) delivery again, with a fresh retry window."""
    now = ctx.clock.now()
    window = ctx.settings.delivery_window_hours
    async with ctx.db.unit_of_work() as uow:
        row = await _own_delivery(uow.conn, caller, delivery_id)
        if row.status == "pending":
            raise IllegalTransition("this delivery is still being tried")
        subscription = await _own_subscription(uow.conn, caller, row.subscription_id)
        if subscription.revoked_at is not None:
            raise IllegalTransition("the subscription is revoked")
        await uow.conn.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == delivery_id)
            .values(
                status="pending",
                next_attempt_at=now,
                give_up_at=now + _hours(window),
                dead_at=None,
            )
        )
    # asked for by hand: it goes now, as the probe if the endpoint's circuit is open
    _circuits(ctx).breaker.probe_now(row.subscription_id)
    wake_of(ctx, SENDER).event.set()
    return await get_delivery(ctx, caller, delivery_id)


def _hours(hours: float) -> timedelta:
    return timedelta(hours=hours)


# ---- the consumer: one delivery per event and matching subscription ------------------------


def _event_units(payload: dict[str, Any]) -> set[str]:
    units = {payload.get("unit_id"), payload.get("lead_unit_id")}
    units.update(payload.get("co_unit_ids") or ())
    return {u for u in units if isinstance(u, str) and u}


# the events about a ticket that change what ``_track_ticket`` keeps of it
TRACKED = frozenset(
    {"ticket.dispatched", "ticket.return_approved", "ticket.completed", "ticket.rehandling_started"}
)


def tracks(envelope: Envelope) -> bool:
    """Whether ``_track_ticket`` changes anything for ``envelope``."""
    return envelope.ticket_id is not None and envelope.type in TRACKED


async def _track_ticket(uow: UnitOfWork, envelope: Envelope) -> None:
    """Keep what the adapters and subscriptions need to know of a ticket."""
    payload, ticket_id = envelope.payload, envelope.ticket_id
    if ticket_id is None:
        return
    if envelope.type == "ticket.dispatched":
        await insert_new(uow.conn, ticket_units, units_of([envelope]))
    elif envelope.type == "ticket.return_approved":
        await uow.conn.execute(
            delete(ticket_units).where(
                ticket_units.c.ticket_id == ticket_id,
                ticket_units.c.unit_id == payload.get("unit_id"),
            )
        )
    status = {"ticket.completed": "completed", "ticket.rehandling_started": "open"}.get(
        envelope.type
    )
    if status is not None:
        await uow.conn.execute(
            update(channel_tickets)
            .where(channel_tickets.c.ticket_id == ticket_id)
            .values(status=status)
        )


SUBSCRIPTIONS = "channels.subscriptions"


def units_of(dispatches: Sequence[Envelope]) -> list[dict[str, Any]]:
    """The units a dispatch gives a ticket to (lead and co-handling), as rows."""
    return [
        {"ticket_id": e.ticket_id, "unit_id": unit}
        for e in dispatches
        for unit in sorted(_event_units(e.payload))
    ]


def first_dispatch(envelope: Envelope) -> bool:
    """Whether ``envelope`` (a ``ticket.dispatched``) is its ticket's first dispatch, which
    gives it units for the first time: no row of ``ticket_units`` can be there for it."""
    payload = envelope.payload
    return payload.get("dispatch_no", 1) == 1 and payload.get("round", 1) == 1


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    """``on_event`` for many ``ticket.dispatched`` at once (the subscriptions that want them
    looked for once: with none, as mostly, nothing is delivered). A batch claimed as new
    (``UnitOfWork.new_facts``) writes its first dispatches' units as new facts (a plain
    INSERT: ``insert_new``'s ``all_new``; one already there, a dispatch re-sent under
    another event id, sends the batch again ignoring duplicates); a later dispatch may give
    a ticket a unit it had (a re-handling round), so those ignore duplicates."""
    first: list[Envelope] = []
    later: list[Envelope] = []
    for e in batch:
        (first if uow.new_facts and first_dispatch(e) else later).append(e)
    if first:
        await insert_new(uow.conn, ticket_units, units_of(first), all_new=True)
    if later:
        await insert_new(uow.conn, ticket_units, units_of(later))
    subs = await active_subscriptions(uow)
    if not any(matches(s.event_types, TicketDispatched.TYPE) for s in subs):
        return
    for envelope in batch:
        await _deliver_to_subscribers(ctx, uow, envelope)


async def on_event(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    if envelope.type.startswith("catalog."):
        return  # the catalog is read for Open311, not offered to subscribers
    await _track_ticket(uow, envelope)
    await _deliver_to_subscribers(ctx, uow, envelope)


async def active_subscriptions(uow: UnitOfWork) -> Sequence[Any]:
    """The subscriptions not revoked. They change through the API only: read once per
    unit of work (a consumer's batch)."""
    subs = uow.memo.get(SUBSCRIPTIONS)
    if subs is None:
        subs = uow.memo[SUBSCRIPTIONS] = await fetch_rows(uow.conn, _ACTIVE, {})
    return subs  # type: ignore[no-any-return]


# built once: on PostgreSQL read on the driver's connection (a consumer's batch)
_ACTIVE = select(subscriptions).where(subscriptions.c.revoked_at.is_(None))


# the patterns of the subscriptions not revoked, on PostgreSQL: one statement on the
# driver's connection (its own transaction), once for each batch the consumer fetches
_SUBSCRIBED = "SELECT DISTINCT event_types::text FROM subscriptions WHERE revoked_at IS NULL"


async def subscribed_types(ctx: ServiceContext, offered: Collection[str]) -> set[str]:
    """The types of ``offered`` that a subscription not revoked wants now (read for each
    batch the consumer fetches: a subscription made or revoked here or in another process
    counts from the next batch on)."""
    if ctx.db.is_postgres:
        async with ctx.db.driver_connection() as (_, raw):
            lists = [orjson.loads(r[0]) for r in await raw.fetch(_SUBSCRIBED)]
    else:
        async with ctx.db.engine.connect() as conn:
            query = select(subscriptions.c.event_types).where(subscriptions.c.revoked_at.is_(None))
            lists = list((await conn.execute(query)).scalars())
    patterns = {p for types in lists for p in types}
    if not patterns:
        return set()
    return {t for t in offered if not t.startswith("catalog.") and matches(patterns, t)}


def subscribed(subs: Sequence[Any], envelope: Envelope) -> bool:
    """Whether a subscription among ``subs`` may be delivered ``envelope``."""
    return not envelope.type.startswith("catalog.") and any(
        matches(s.event_types, envelope.type) for s in subs
    )


async def _deliver_to_subscribers(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    subs = await active_subscriptions(uow)
    wanted = [s for s in subs if matches(s.event_types, envelope.type)]
    if not wanted:
        return
    units_of_ticket: set[str] = set()
    if envelope.ticket_id is not None and any(s.unit_id for s in wanted):
        units_of_ticket = set(
            (
                await uow.conn.execute(
                    select(ticket_units.c.unit_id).where(
                        ticket_units.c.ticket_id == envelope.ticket_id
                    )
                )
            ).scalars()
        )
    event_units = _event_units(envelope.payload)
    now = ctx.clock.now()
    rows = [
        {
            "delivery_id": str(uuid.uuid4()),
            "subscription_id": s.subscription_id,
            "event_id": str(envelope.event_id),
            "event_type": envelope.type,
            "ticket_id": envelope.ticket_id,
            "body": envelope.to_json().decode(),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "give_up_at": now + _hours(ctx.settings.delivery_window_hours),
        }
        for s in wanted
        if receives(s.unit_id, event_units, units_of_ticket)
    ]
    if rows:
        await uow.conn.execute(insert_ignoring_duplicates(uow.conn, deliveries), rows)
        uow.after_commit.append(wake_of(ctx, SENDER).event.set)


# ---- the sender ------------------------------------------------------------------------------


def _endpoints(ctx: ServiceContext) -> Reachability:
    """The subscribers' endpoints' outages (logged, never their URL) and circuits (one per
    subscription)."""
    return guarded(ctx, SENDER, log, "webhook endpoint", "subscription", "deliveries")


def _circuits(ctx: ServiceContext) -> Circuits:
    return Circuits.of(_endpoints(ctx), deliveries.c.subscription_id)


def endpoint_circuits(ctx: ServiceContext) -> list[Sample]:
    """For /metrics: the circuit of each endpoint tried since the process started."""
    return circuit_samples(SENDER, _circuits(ctx).breaker, ())


async def _send(ctx: ServiceContext, client: httpx.AsyncClient, row: Any) -> None:
    async with ctx.db.engine.connect() as conn:
        subscription = (
            await conn.execute(
                select(subscriptions).where(subscriptions.c.subscription_id == row.subscription_id)
            )
        ).one()
    body = row.body.encode()
    sent_at = ctx.clock.now()
    headers = {
        "content-type": "application/json",
        "user-agent": "hotline12345-webhooks/1",
        "x-hotline-delivery": row.delivery_id,
        "x-hotline-event": row.event_type,
        SIGNATURE_HEADER: signature_header(
            secret_of(ctx, row.subscription_id), int(sent_at.timestamp()), body
        ),
    }
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        answer = await client.post(subscription.url, content=body, headers=headers)
        status_code = answer.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    # an endpoint that cannot be reached logs when that starts and ends (never its URL);
    # each delivery's attempts are in delivery_attempts
    _endpoints(ctx).tried(row.subscription_id, row.delivery_id, status_code, error)
    await _record(ctx, row, status_code, error, int((time.monotonic() - started) * 1000))


async def _record(
    ctx: ServiceContext, row: Any, status_code: int | None, error: str | None, took_ms: int
) -> None:
    now = ctx.clock.now()
    outcome = attempt_outcome(
        ctx,
        row,
        status_code,
        error,
        done=("delivered", "delivered_at"),
        given_up=("dead", "dead_at"),
    )
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            insert(delivery_attempts).values(
                delivery_id=row.delivery_id,
                attempted_at=now,
                status_code=status_code,
                error=error,
                duration_ms=took_ms,
            )
        )
        if outcome.gave_up:
            uow.emit(
                DeliveryFailed(
                    delivery_id=row.delivery_id,
                    subscription_id=row.subscription_id,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    ticket_id=row.ticket_id,
                    attempts=outcome.attempts,
                    last_status_code=status_code,
                    last_error=error,
                    dead_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now, ticket_id=row.ticket_id)
            )
        await uow.conn.execute(
            update(deliveries)
            .where(deliveries.c.delivery_id == row.delivery_id)
            .values(outcome.values)
        )


async def delivery_sender(ctx: ServiceContext) -> None:
    """Background loop sending webhook deliveries as they fall due."""
    async with httpx.AsyncClient(
        timeout=ctx.settings.delivery_timeout_seconds,
        trust_env=False,
        follow_redirects=False,
    ) as http:

        async def send_due() -> bool:
            due = await claim_due(ctx, deliveries, deliveries.c.delivery_id, _circuits(ctx))
            await asyncio.gather(*(_send(ctx, http, row) for row in due))
            return bool(due)

        await run_sender(ctx, SENDER, send_due, lambda: next_due(ctx, deliveries, _circuits(ctx)))
