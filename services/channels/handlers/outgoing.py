"""The loop every outgoing sender shares (webhooks, notifications): send what is due, then
sleep on the service clock until the next retry is due (tests move the clock) or until new
work is queued; a database hiccup never ends it. An outside system that cannot be reached
is an outage, logged when it starts and when it ends (``Reachability``), not per try."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Table, func, select, update

from services.channels.domain import next_attempt
from shared.logging import Outage
from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.outgoing")
IDLE_POLL = timedelta(seconds=1)  # another instance may have queued work
BATCH = 50


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
    outage = Outage(log, "sender", sender=name)
    while True:
        wake.event.clear()
        due: datetime | None = None
        try:
            if await send_due():
                outage.ok()
                continue
            due = await next_due()
            outage.ok()
        except Exception:  # noqa: BLE001 - the loop outlives a database hiccup
            outage.failed()  # logged once: retried at the idle poll until it works
        poll_until = ctx.clock.now() + IDLE_POLL
        until = min(due, poll_until) if due is not None else poll_until
        sleeping = asyncio.ensure_future(ctx.clock.sleep_until(until))
        woken = asyncio.ensure_future(wake.event.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()


def unreachable(status_code: int | None, error: str | None) -> bool:
    """A failed try the outside system is to blame for, not the message: no answer
    (connection refused, timeout), a 5xx, or a 429 (too many requests)."""
    return error is not None and (status_code is None or status_code >= 500 or status_code == 429)


def reason(status_code: int | None, error: str | None) -> str:
    """What went wrong, fit for a log line: the status, or the name of the exception;
    never an answer's text or the request, which may hold a phone number or the content."""
    if status_code is not None:
        return f"HTTP {status_code}"
    return (error or "").split(":", 1)[0][:100]


class Reachability:
    """Outages of the outside systems one sender talks to (an SMS provider, WeChat, a
    subscriber's endpoint): each is logged once when it starts (a warning) and once when it
    ends, with how long it lasted, how many tries failed and how many of the sender's rows
    they concerned. Each row keeps its own attempts (the API shows them); the log does not."""

    def __init__(self, logger: logging.Logger, what: str, label: str, rows: str) -> None:
        self.logger, self.what, self.label, self.rows = logger, what, label, rows
        self._down: dict[str, tuple[Outage, set[str]]] = {}

    def tried(self, system: str, row: str, status_code: int | None, error: str | None) -> bool:
        """Record one try of ``row`` at ``system``. True: it failed because the system
        cannot be reached (nothing to log for the row itself); False: the system answered
        (sent, or the row refused: the row's own outcome)."""
        if unreachable(status_code, error):
            if system not in self._down:
                outage = Outage(self.logger, self.what)
                outage.extra = {self.label: system}
                self._down[system] = (outage, set())
            outage, rows = self._down[system]
            rows.add(row)
            outage.failed(reason(status_code, error))
            return True
        down = self._down.pop(system, None)
        if down is not None:
            down[0].ok(**{self.rows: len(down[1])})
        return False


def reachability(ctx: ServiceContext, name: str, make: Callable[[], Reachability]) -> Reachability:
    """The sender ``name``'s outside systems, one record per service (and test)."""
    found = ctx.extras.get(f"reachability:{name}")
    if found is None:
        found = ctx.extras[f"reachability:{name}"] = make()
    return found  # type: ignore[no-any-return]


async def claim_due(ctx: ServiceContext, table: Table, key: Column[Any]) -> list[Any]:
    """The rows due now, leased for one attempt (another instance skips them: SKIP LOCKED
    on PostgreSQL, and the lease moves their due time past the attempt)."""
    now = ctx.clock.now()
    lease = now + timedelta(seconds=ctx.settings.delivery_timeout_seconds + 30)
    async with ctx.db.unit_of_work() as uow:
        query = (
            select(table)
            .where(table.c.status == "pending", table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at)
            .limit(BATCH)
        )
        if ctx.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        rows = (await uow.conn.execute(query)).all()
        if rows:
            await uow.conn.execute(
                update(table)
                .where(key.in_([getattr(r, key.name) for r in rows]))
                .values(next_attempt_at=lease)
            )
    return list(rows)


async def next_due(ctx: ServiceContext, table: Table) -> datetime | None:
    async with ctx.db.engine.connect() as conn:
        due: datetime | None = await conn.scalar(
            select(func.min(table.c.next_attempt_at)).where(table.c.status == "pending")
        )
    return due


@dataclass(frozen=True)
class Outcome:
    """What one attempt changes on its row; ``gave_up``: the window is over (the caller
    emits its failure event in the same transaction)."""

    values: dict[str, Any]
    attempts: int
    gave_up: bool


def attempt_outcome(
    ctx: ServiceContext,
    row: Any,
    status_code: int | None,
    error: str | None,
    *,
    done: tuple[str, str],
    given_up: tuple[str, str],
) -> Outcome:
    """The row's new values after an attempt: ``done``/``given_up`` name the status and
    the timestamp column for success and for the end of the retry window."""
    now = ctx.clock.now()
    attempts = row.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_error": error,
        "next_attempt_at": None,
    }
    if error is None:
        values.update({"status": done[0], done[1]: now})
        return Outcome(values, attempts, gave_up=False)
    again = retry_at(ctx, attempts, row.give_up_at)
    if again is not None:
        values.update(next_attempt_at=again)
        return Outcome(values, attempts, gave_up=False)
    values.update({"status": given_up[0], given_up[1]: now})
    return Outcome(values, attempts, gave_up=True)


def retry_at(ctx: ServiceContext, attempts: int, give_up_at: datetime) -> datetime | None:
    """When a failed row is tried again; None: its window is over."""
    return next_attempt(
        attempts,
        ctx.clock.now(),
        base=ctx.settings.delivery_backoff_seconds,
        ceiling=ctx.settings.delivery_backoff_max_seconds,
        give_up_at=give_up_at,
    )
