"""The loop every outgoing sender shares (webhooks, notifications): send what is due, then
sleep on the service clock until the next retry is due (tests move the clock) or until new
work is queued; a database hiccup never ends it. An outside system that cannot be reached
is an outage, logged when it starts and when it ends (``Reachability``), not per try; one
that keeps failing is not called at all for a while (``CircuitBreaker``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, Table, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from services.channels.domain import next_attempt
from shared.aio import IdlePoll, act_if_due
from shared.clock import Clock
from shared.logging import Outage
from shared.metrics import Sample
from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.outgoing")
# A sender looks by itself for work another instance queued (this process's own wakes it):
# IDLE_POLL after it last sent, then twice as long after each look that found nothing, up
# to IDLE_POLL_MAX. The instance that queued it sends it too (and retries at its time); the
# longest wait only delays work whose instance stopped before sending it.
IDLE_POLL = timedelta(seconds=1)
IDLE_POLL_MAX = timedelta(seconds=8)
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
    poll = IdlePoll(IDLE_POLL.total_seconds(), IDLE_POLL_MAX.total_seconds())
    while True:
        wake.event.clear()
        due: datetime | None = None
        try:
            sent, due = await act_if_due(ctx.clock.now, next_due, send_due)
            outage.ok()
            if sent:
                poll.found()
                continue
        except Exception:  # noqa: BLE001 - the loop outlives a database hiccup
            outage.failed()  # logged once: retried at the idle poll until it works
        poll_until = ctx.clock.now() + timedelta(seconds=poll.wait())
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


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CIRCUIT_STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass
class _Circuit:
    state: str = CLOSED
    failures: int = 0  # tries in a row the system could not be reached
    until: datetime | None = None  # open: the end of the cool-down
    probe_sent: datetime | None = None  # half-open: when the one probe went


class CircuitBreaker:
    """Stops calling an outside system that keeps failing (断路器). After ``failures``
    tries in a row that could not reach it, its circuit is *open*: none of its rows is sent
    for ``cooldown`` (they stay queued as they are: no attempt counted, nothing lost); then
    *half-open*: one row goes as a probe, and the circuit *closes* if it reached the system
    (the rest follow) or opens for another cool-down if not. Each change of state is logged
    once. In memory, one per sender and process, on the service clock (tests move it)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        label: str,
        clock: Clock,
        *,
        failures: int,
        cooldown: timedelta,
    ) -> None:
        self.logger, self.what, self.label, self.clock = logger, what, label, clock
        self.failures, self.cooldown = max(1, failures), cooldown
        self._circuits: dict[str, _Circuit] = {}

    def _change(self, system: str, circuit: _Circuit, state: str, message: str) -> None:
        circuit.state, circuit.probe_sent = state, None
        circuit.until = self.clock.now() + self.cooldown if state == OPEN else None
        if state == CLOSED:
            circuit.failures = 0
        self.logger.info(
            f"{self.what} circuit {message}",
            extra={
                self.label: system,
                "circuit": state,
                "cooldown_seconds": self.cooldown.total_seconds(),
            },
        )

    def blocked(self) -> list[str]:
        """The systems not to be called now (open, their cool-down not over)."""
        now = self.clock.now()
        return sorted(
            system
            for system, c in self._circuits.items()
            if c.state == OPEN and c.until is not None and now < c.until
        )

    def reopens_at(self) -> datetime | None:
        """When the first open circuit's cool-down ends (its probe may go)."""
        ends = [c.until for c in self._circuits.values() if c.state == OPEN and c.until]
        return min(ends, default=None)

    def admit(self, system: str) -> bool:
        """May a row be sent to ``system`` now? Half-open: the first asking is the probe."""
        circuit = self._circuits.get(system)
        if circuit is None or circuit.state == CLOSED:
            return True
        if circuit.state == OPEN:
            if circuit.until is not None and self.clock.now() < circuit.until:
                return False
            self._change(system, circuit, HALF_OPEN, "half-open: one probe")
        now = self.clock.now()
        if circuit.probe_sent is not None and now < circuit.probe_sent + self.cooldown:
            return False  # the probe is out (one never told of goes again after a cool-down)
        circuit.probe_sent = now
        return True

    def tried(self, system: str, reached: bool) -> None:
        """The outcome of one call: ``reached`` the system (it answered, even to refuse)."""
        circuit = self._circuits.setdefault(system, _Circuit())
        if reached:
            if circuit.state != CLOSED:
                self._change(system, circuit, CLOSED, "closed: the system answers again")
            circuit.failures = 0
            return
        circuit.failures += 1
        if circuit.state == HALF_OPEN:
            self._change(system, circuit, OPEN, "opened again: the probe failed")
        elif circuit.state == CLOSED and circuit.failures >= self.failures:
            self._change(system, circuit, OPEN, "opened: not called until the cool-down ends")

    def probe_now(self, system: str) -> None:
        """Someone asked for a try now (a redelivery): an open circuit's cool-down ends."""
        circuit = self._circuits.get(system)
        if circuit is not None and circuit.state == OPEN:
            circuit.until = self.clock.now()

    def states(self) -> dict[str, str]:
        return {system: c.state for system, c in sorted(self._circuits.items())}


def breaker_of(
    ctx: ServiceContext, logger: logging.Logger, what: str, label: str
) -> CircuitBreaker:
    """A sender's breaker, as the settings say (``delivery_circuit_*``)."""
    return CircuitBreaker(
        logger,
        what,
        label,
        ctx.clock,
        failures=ctx.settings.delivery_circuit_failures,
        cooldown=timedelta(seconds=ctx.settings.delivery_circuit_cooldown_seconds),
    )


class Reachability:
    """Outages of the outside systems one sender talks to (an SMS provider, WeChat, a
    subscriber's endpoint): each is logged once when it starts (a warning) and once when it
    ends, with how long it lasted, how many tries failed and how many of the sender's rows
    they concerned. Each row keeps its own attempts (the API shows them); the log does not."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        label: str,
        rows: str,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.logger, self.what, self.label, self.rows = logger, what, label, rows
        self.breaker = breaker  # told of every try, where the sender has one
        self._down: dict[str, tuple[Outage, set[str]]] = {}

    def tried(self, system: str, row: str, status_code: int | None, error: str | None) -> bool:
        """Record one try of ``row`` at ``system``. True: it failed because the system
        cannot be reached (nothing to log for the row itself); False: the system answered
        (sent, or the row refused: the row's own outcome)."""
        failed = unreachable(status_code, error)
        if self.breaker is not None:
            self.breaker.tried(system, reached=not failed)
        if failed:
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


def guarded(
    ctx: ServiceContext, name: str, logger: logging.Logger, what: str, label: str, rows: str
) -> Reachability:
    """``reachability`` for a sender whose outside systems each have a circuit breaker."""
    return reachability(
        ctx,
        name,
        lambda: Reachability(logger, what, label, rows, breaker_of(ctx, logger, what, label)),
    )


@dataclass(frozen=True)
class Circuits:
    """A sender's breaker and the column naming each row's outside system."""

    breaker: CircuitBreaker
    system: Column[Any]

    @classmethod
    def of(cls, systems: Reachability, column: Column[Any]) -> Circuits:
        assert systems.breaker is not None, "made by guarded()"
        return cls(systems.breaker, column)

    def not_blocked(self) -> list[ColumnElement[bool]]:
        blocked = self.breaker.blocked()
        return [self.system.not_in(blocked)] if blocked else []


async def claim_due(
    ctx: ServiceContext, table: Table, key: Column[Any], circuits: Circuits | None = None
) -> list[Any]:
    """The rows due now, leased for one attempt (another instance skips them: SKIP LOCKED
    on PostgreSQL, and the lease moves their due time past the attempt). With ``circuits``,
    no row of a system whose circuit is open, and of a half-open one only its probe: the
    others are handed back as due now, to go once the probe has closed the circuit."""
    now = ctx.clock.now()
    lease = now + timedelta(seconds=ctx.settings.delivery_timeout_seconds + 30)
    async with ctx.db.unit_of_work() as uow:
        query = (
            select(table)
            .where(
                table.c.status == "pending",
                table.c.next_attempt_at <= now,
                *(circuits.not_blocked() if circuits else ()),
            )
            .order_by(table.c.next_attempt_at)
            .limit(BATCH)
        )
        if ctx.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        rows = list((await uow.conn.execute(query)).all())
        if circuits is not None:  # the others are not leased: still due, as they were
            rows = [r for r in rows if circuits.breaker.admit(getattr(r, circuits.system.name))]
        if rows:
            await uow.conn.execute(
                update(table)
                .where(key.in_([getattr(r, key.name) for r in rows]))
                .values(next_attempt_at=lease)
            )
    return rows


@lru_cache(maxsize=8)
def _next_due(table: Table) -> Any:
    """The next due time of ``table``'s pending rows, built once for each table."""
    return select(func.min(table.c.next_attempt_at)).where(table.c.status == "pending")


async def next_due(
    ctx: ServiceContext, table: Table, circuits: Circuits | None = None
) -> datetime | None:
    """When the next row falls due, leaving out systems whose circuit is open, or when the
    first open circuit may send its probe, whichever comes first."""
    conditions = circuits.not_blocked() if circuits else []
    due: datetime | None
    if conditions:  # an open circuit (rare): a statement of its own, through SQLAlchemy
        async with ctx.db.engine.connect() as conn:
            due = await conn.scalar(_next_due(table).where(*conditions))
    else:
        due = await ctx.db.scalar(_next_due(table))
    probe = circuits.breaker.reopens_at() if circuits else None
    return min((t for t in (due, probe) if t is not None), default=None)


def circuit_samples(sender: str, breaker: CircuitBreaker, systems: Collection[str]) -> list[Sample]:
    """For /metrics: 1 for each system's circuit state (``systems``: shown closed until
    anything is known of them)."""
    states = {**dict.fromkeys(systems, CLOSED), **breaker.states()}
    return [
        (
            "hotline_channels_circuit",
            "an outside system's circuit breaker: 1 for its state (closed: called as usual; "
            "open: not called during the cool-down; half_open: one probe)",
            {"sender": sender, "system": system, "state": state},
            1.0 if state == current else 0.0,
        )
        for system, current in sorted(states.items())
        for state in CIRCUIT_STATES
    ]


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
