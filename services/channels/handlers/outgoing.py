"""The loop every outgoing sender shares (webhooks, notifications): send what is due, then
sleep on the service clock until the next retry is due (tests move the clock) or until new
work is queued; a database hiccup never ends it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.outgoing")
IDLE_POLL = timedelta(seconds=1)  # another instance may have queued work


@dataclass
class Wake:
    """Rung by whoever queues work (after its commit)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)


def wake_of(ctx: ServiceContext, name: str) -> Wake:
    wake = ctx.extras.get(f"wake:{name}")
    if wake is None:
        wake = ctx.extras[f"wake:{name}"] = Wake()
    return wake  # type: ignore[no-any-return]


async def run_sender(
    ctx: ServiceContext,
    name: str,
    send_due: Callable[[], Awaitable[bool]],
    next_due: Callable[[], Awaitable[datetime | None]],
) -> None:
    """``send_due`` sends one batch and says whether there was any; ``next_due`` is the
    earliest time something waiting becomes due."""
    wake = wake_of(ctx, name)
    while True:
        wake.event.clear()
        due: datetime | None = None
        try:
            if await send_due():
                continue
            due = await next_due()
        except Exception:  # noqa: BLE001 - the loop outlives a database hiccup
            log.exception("sender failed; trying again", extra={"sender": name})
        poll_until = ctx.clock.now() + IDLE_POLL
        until = min(due, poll_until) if due is not None else poll_until
        sleeping = asyncio.ensure_future(ctx.clock.sleep_until(until))
        woken = asyncio.ensure_future(wake.event.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()
