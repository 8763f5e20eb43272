"""The channels service's commands, queries, consumers and background loops, one module
per adapter: ``accounts``, ``wechat``, ``cti``, ``webhooks``."""

from __future__ import annotations

from collections.abc import Sequence

from services.channels.handlers import notifications, open311, webhooks
from services.channels.handlers.notifications import notification_sender, provider_circuits
from services.channels.handlers.webhooks import delivery_sender, endpoint_circuits
from services.channels.handlers.wechat import retry_pending
from shared.bus import Wanted
from shared.db import UnitOfWork
from shared.events import EVENT_TYPES, DeadlineSet, Envelope, Header, TicketDispatched
from shared.metrics import Sample
from shared.service import EventHandler, ManyHandler, ServiceContext
from shared.settings import secret_problems

CONSUMED_STREAMS = ("ticket.", "sla.", "evaluation.", "supervision.", "monitor.", "catalog.")


async def on_event(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Keep the read models, queue the webhook deliveries and the notifications."""
    await open311.on_event(ctx, uow, envelope)
    await webhooks.on_event(ctx, uow, envelope)
    await notifications.on_event(ctx, uow, envelope)


async def on_dispatched(ctx: ServiceContext, uow: UnitOfWork, events: Sequence[Header]) -> None:
    """``on_event`` for many ``ticket.dispatched`` (one a ticket, the hot path): a few
    statements for all of them."""
    batch = [e.as_envelope() for e in events]  # as the bus read them (``many_read=False``)
    await open311.on_dispatched(uow, batch)
    await webhooks.on_dispatched(ctx, uow, batch)
    await notifications.on_dispatched(ctx, uow, batch)


async def of_no_effect(ctx: ServiceContext, uow: UnitOfWork, events: Sequence[Header]) -> set[str]:
    """The events of ``events`` that would change nothing here: no read model or
    notification takes anything from them and no subscription wants them (most of the
    tickets' traffic: a registration, a clock's deadline). The consumer neither runs nor
    records them; the subscriptions read stay with ``uow`` for the batch's deliveries."""
    batch = [e.as_envelope() for e in events]  # as the bus read them (``many_read=False``)
    idle = [e for e in batch if not _read_here(e)]
    if not idle:
        return set()
    subs = await webhooks.active_subscriptions(uow)
    return {str(e.event_id) for e in idle if not webhooks.subscribed(subs, e)}


# every type a read model or notification here may take something from (``_read_here``
# tells for each event)
READ_HERE = open311.TAKEN | webhooks.TRACKED | notifications.TAKEN


async def wanted_types(ctx: ServiceContext) -> Wanted:
    """The types the consumer takes now: those read here and those a subscription wants.
    The bus passes the others over unparsed (most of a ticket's traffic: its registration,
    and, while no subscription wants them, its clocks' deadlines but the completion
    clock's), asked before each batch is decoded."""
    subscribed = await webhooks.subscribed_types(ctx, EVENT_HANDLERS)
    unless = {} if DeadlineSet.TYPE in subscribed else {DeadlineSet.TYPE: open311.OTHER_CLOCKS}
    return Wanted(READ_HERE | subscribed, unless)


def _read_here(envelope: Envelope) -> bool:
    return (
        open311.takes_from(envelope)
        or webhooks.tracks(envelope)
        or notifications.takes_from(envelope)
    )


# every event an outside system may subscribe to or be notified of
EVENT_HANDLERS: dict[str, EventHandler] = {
    t: on_event for t in sorted(EVENT_TYPES) if t.startswith(CONSUMED_STREAMS)
}
MANY_HANDLERS: dict[str, ManyHandler] = {TicketDispatched.TYPE: on_dispatched}


async def channel_metrics(ctx: ServiceContext) -> list[Sample]:
    """For /metrics: the circuit breakers of the notification providers and webhook
    endpoints (handlers/outgoing.py)."""
    return provider_circuits(ctx) + endpoint_circuits(ctx)


async def check_secrets(ctx: ServiceContext) -> None:
    """Every signing secret derives from HOTLINE_CHANNELS_SECRET: never the public default
    in production."""
    if ctx.settings.env != "production":
        return
    problems = secret_problems("HOTLINE_CHANNELS_SECRET", ctx.settings.channels_secret)
    if problems:
        raise RuntimeError("refusing to start in production: " + "; ".join(problems))


__all__ = [
    "EVENT_HANDLERS",
    "MANY_HANDLERS",
    "of_no_effect",
    "wanted_types",
    "channel_metrics",
    "check_secrets",
    "delivery_sender",
    "notification_sender",
    "retry_pending",
]
