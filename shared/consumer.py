"""A service's consumer: batches from the bus handled in one transaction, each event exactly
once (inbox), a failing event parked as a dead letter instead of stopping the others.

How a batch is handled (one transaction):
0. a service that can tell (``of_no_effect``) names the events that would change nothing
   in it (its read models take nothing from them, nobody subscribed to them): they are
   neither run nor recorded, so they cost no inbox row, and, having no effect, they need
   no dedupe and wait behind no parked event;
1. one multi-row inbox insert returns the events this service has not seen before (first
   as a plain insert of them all: a redelivered event fails it, and the batch is claimed
   again with ``ON CONFLICT DO NOTHING``, which costs the database more on every row);
2. **the fast path**: every new event runs in the batch's transaction (no savepoint);
   runs of events a service can handle set-based (``many`` handlers: one statement for
   many events) are handed over together, never two events of one ticket in a run and
   each ticket's events in order (``_runs``);
3. if anything in the fast path fails, the whole transaction is rolled back and the
   batch is claimed again and handled **event by event**, each in its own SAVEPOINT: a
   failure rolls back that event only; it is tried ``max_attempts`` times (short
   back-off), then **parked**;
4. an event whose key (ticket) already has a parked event in this service is parked
   **behind** it without running, so a ticket's events are never applied out of order;
5. the outbox rows of every handled event are written in one statement; commit.

A handler's effects outside the database belong in ``uow.after_commit``: the fast path
may run a handler whose work is then rolled back and done again event by event.

An outage (database unreachable, connection lost) is not an event's fault: it propagates,
and the bus retries the whole batch with back-off.

Parked events are listed, retried and discarded through ``/dead-letters`` (admin).
Retrying a parked event re-runs it and then the events parked behind it, in order, and
stops at the first that fails again. Discarding one releases the events parked behind it
(they run, in order, at once).

A message the bus cannot read as an event at all (``park_unparseable``) is parked at once,
on its own key: it holds no ticket's events up, since what it would be about cannot be
read. Its retry is refused (409) while it still cannot be read; once it can (a consumer
that reads its version is deployed) it runs as the event it is, exactly once, and under
the same rule as any event of its ticket: if the ticket has parked events, it joins their
queue in the order it was parked (``_read_again``): parked before them, it heads the
queue and runs now, the others following; parked after, it waits behind the head.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus import Unparseable, parse_error
from shared.db import (
    UNPARSEABLE,
    Database,
    SeenBefore,
    UnitOfWork,
    insert_new,
    refused_by_a_key,
)
from shared.errors import IllegalTransition, NotFound, is_database_outage
from shared.events import Envelope, Header, Outgoing
from shared.logging import trace_id_var

if TYPE_CHECKING:
    from shared.service import ServiceContext

log = logging.getLogger("hotline.consumer")

EventHandler = Callable[["ServiceContext", UnitOfWork, Envelope], Coroutine[Any, Any, None]]
# the same effect as the event handler of that type, for many events (distinct keys) at once
# (``parse_payloads`` reads them as their model: the bus may have read them so, ``Received``)
ManyHandler = Callable[["ServiceContext", UnitOfWork, Sequence[Header]], Coroutine[Any, Any, None]]
# the ids of the events of a batch that would change nothing in this service (in the state
# the unit of work reads): they are neither run nor recorded in the inbox
NoEffect = Callable[
    ["ServiceContext", UnitOfWork, Sequence[Header]], Coroutine[Any, Any, Collection[str]]
]
PARKED, RETRIED, DISCARDED = "parked", "retried", "discarded"


# deadlock_detected, serialization_failure, lock_not_available: another transaction (another
# instance's batch) was in the way; nothing is wrong with the event
_CONTENTION = frozenset({"40P01", "40001", "55P03"})


def is_outage(exc: BaseException) -> bool:
    """Not the event's fault: the database (or the network to it) failed, or the batch
    collided with another transaction. The whole batch is rolled back and retried. The
    driver's own errors count as SQLAlchemy's do: shared/db.py sends some statements on
    the driver's connection directly."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if getattr(exc.orig, "sqlstate", None) in _CONTENTION:
            return True
    elif type(exc).__module__.startswith("asyncpg"):
        return getattr(exc, "sqlstate", None) in _CONTENTION or is_database_outage(exc)
    return isinstance(
        exc, (OperationalError, InterfaceError, DisconnectionError, ConnectionError, OSError)
    )


class Consumer:
    def __init__(
        self,
        ctx: ServiceContext,
        handlers: Mapping[str, EventHandler],
        *,
        many: Mapping[str, ManyHandler] | None = None,
        of_no_effect: NoEffect | None = None,
        max_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.handlers = handlers
        self.many = dict(many or {})
        # the types whose set-based handler emits under each event's own trace id itself
        self.traced = frozenset(t for t, h in self.many.items() if getattr(h, OWN_TRACES, False))
        self.of_no_effect = of_no_effect
        self.max_attempts = max(1, max_attempts)
        self.retry_delay = retry_delay

    @property
    def db(self) -> Database:
        return self.ctx.db

    # ---- the batch -----------------------------------------------------------------

    async def handle_batch(self, batch: Sequence[Header]) -> None:
        """Handle ``batch``: ``Envelope``s, and events the bus read as their models
        (``Received``: ``subscribe``'s ``models``), which only ``many`` handlers get as
        they are (the others get their envelopes)."""
        handlers = self.handlers
        taken = [e for e in batch if e.type in handlers]
        if not taken:
            return
        wanted: dict[str, Header] = {}
        for text, envelope in zip(id_texts(taken), taken, strict=True):
            wanted.setdefault(text, envelope)
        if len(wanted) > 1 or self.many:
            try:
                try:
                    await self._handle(wanted, fast=True, all_new=True)
                # a redelivery, or a fact already written under another event id: rolled
                # back whole; once more, sorted out
                except SeenBefore:
                    await self._handle(wanted, fast=True)
                return
            except _FellBack:
                pass  # rolled back whole; once more, event by event
        await self._handle(wanted, fast=False)

    async def _handle(
        self, wanted: Mapping[str, Header], *, fast: bool, all_new: bool = False
    ) -> None:
        """The batch in one transaction: ``fast`` runs every event not parked behind
        another at once (raises ``_FellBack``, the transaction rolled back, if any of it
        fails); otherwise each event runs in a savepoint of its own. ``all_new`` claims
        the events as new ones, as nearly all batches' are, and has the set-based handlers
        write their effects as new facts (``UnitOfWork.new_facts``): raises ``SeenBefore``,
        the transaction rolled back, if an event or a fact is not
        (``Database.claim_unparked``, ``insert_new``)."""
        events: list[Envelope | Outgoing] = []
        callbacks: list[Callable[[], None]] = []
        parked: list[dict[str, Any]] = []
        async with self.db.kept_transaction() as conn:
            batch_uow = UnitOfWork(conn, new_facts=all_new)
            if self.of_no_effect is not None:
                idle = await self.of_no_effect(self.ctx, batch_uow, list(wanted.values()))
                if idle:
                    wanted = {i: e for i, e in wanted.items() if i not in idle}
                if not wanted:
                    return
            keys = {e.key for e in wanted.values()}
            new, heads = await self.db.claim_unparked(
                conn, self.name, list(wanted), list(keys), all_new=all_new
            )
            todo = (
                list(wanted.values())
                if len(new) == len(wanted)
                else [e for i, e in wanted.items() if i in new]
            )
            if not todo:
                return
            blocked: dict[str, int | None] = dict(heads)
            if fast:
                # nearly always nothing is parked: every event is ready
                ready = [e for e in todo if e.key not in blocked] if blocked else todo
                if ready:
                    # a ticket's events are all in ``wanted``: distinct there, distinct here
                    distinct = True if len(keys) == len(wanted) else None
                    events, callbacks = await self._fast(batch_uow, ready, distinct)
                todo = [e for e in todo if e.key in blocked] if blocked else []
            for envelope in todo:
                token = trace_id_var.set(envelope.trace_id)
                try:
                    if envelope.key in blocked:
                        parked.append(
                            _dead_row(
                                self.name,
                                envelope,
                                "parked behind an earlier event",
                                0,
                                behind=blocked[envelope.key],
                            )
                        )
                        continue
                    uow, error, attempts = await self._attempt(conn, envelope)
                    if uow is not None:
                        events.extend(uow.events)
                        callbacks.extend(uow.after_commit)
                        continue
                    parked.append(_dead_row(self.name, envelope, error, attempts))
                    blocked[envelope.key] = None  # its id is known after the insert
                finally:
                    trace_id_var.reset(token)
            await self.db.write_outbox(conn, events)
            if parked:
                await self._park(conn, parked)
        self._after_commit(events, callbacks)
        for row in parked:
            log.error(
                "event parked as a dead letter",
                extra={
                    "consumer": self.name,
                    "event": row["event_id"],
                    "event_type": row["event_type"],
                    "attempts": row["attempts"],
                    "behind": row["behind"],
                    "error": row["error"][:300],
                },
            )

    async def _fast(
        self, uow: UnitOfWork, ready: Sequence[Header], distinct: bool | None = None
    ) -> tuple[list[Envelope | Outgoing], list[Callable[[], None]]]:
        """Every event of ``ready`` in the batch's transaction (``uow``), set-based where a
        service can (no savepoint: two round trips a batch). If any of it fails,
        ``_FellBack`` rolls the whole transaction back and the batch goes again event by
        event; if a key refuses a fact taken for new (``UnitOfWork.new_facts``),
        ``SeenBefore`` does, and the batch goes again set-based, ignoring duplicates.
        ``distinct``: True when ``ready`` is known to hold one event a ticket (``_runs``)."""
        conn = uow.conn
        try:
            for run in _runs(ready, self.many, distinct):
                token = trace_id_var.set(run[0].trace_id)
                emitted = len(uow.events)
                try:
                    kind = run[0].type
                    if kind in self.many:
                        await self.many[kind](self.ctx, uow, run)
                        if kind not in self.traced:
                            _own_trace_ids(uow.events, emitted, run)
                    else:
                        await self.handlers[run[0].type](self.ctx, uow, run[0].as_envelope())
                finally:
                    trace_id_var.reset(token)
        except Exception as exc:  # noqa: BLE001 - handled again event by event
            if is_outage(exc) or conn.invalidated:
                raise
            if uow.new_facts and refused_by_a_key(exc):
                raise SeenBefore from exc
            log.info(
                "batch fell back to event-by-event handling",
                extra={"consumer": self.name, "events": len(ready), "error": repr(exc)[:300]},
            )
            raise _FellBack from exc
        return uow.events, uow.after_commit

    async def _attempt(
        self, conn: AsyncConnection, event: Header
    ) -> tuple[UnitOfWork | None, str, int]:
        """Run the handler in a savepoint, up to ``max_attempts`` times. An outage
        propagates (the whole batch is retried); any other failure counts."""
        handler = self.handlers[event.type]
        envelope = event.as_envelope()
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            uow = UnitOfWork(conn)
            try:
                async with conn.begin_nested():
                    await handler(self.ctx, uow, envelope)
                return uow, "", attempt
            except Exception as exc:  # noqa: BLE001 - counted, then parked
                if is_outage(exc) or conn.invalidated:
                    raise
                error = f"{type(exc).__name__}: {exc}"[:4000]
                log.warning(
                    "handler failed",
                    exc_info=attempt == 1,
                    extra={
                        "consumer": self.name,
                        "event": str(envelope.event_id),
                        "event_type": envelope.type,
                        "attempt": attempt,
                    },
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        return None, error, self.max_attempts

    async def _park(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Insert the dead letters in order; an event parked behind one parked in this same
        batch learns that one's id here."""
        dead = self.db.dead_letters
        heads: dict[str, int] = {}
        for row in rows:
            if row["behind"] is None and row["attempts"] == 0:
                row["behind"] = heads.get(row["key"])
            new_id = (
                await conn.execute(insert(dead).values(row).returning(dead.c.id))
            ).scalar_one()
            if row["attempts"] > 0:
                heads[row["key"]] = new_id

    async def park_unparseable(self, messages: Sequence[Unparseable]) -> None:
        """Park the messages the bus could not read as events, at once (trying again cannot
        make them parse): one dead letter per message, with its raw bytes, where it was and
        why. A message delivered (or published) again is the same dead letter, not a second
        one (its id is made from its topic and bytes). Each newly parked one writes one
        ``error`` log line, which says where it was and why, never what it holds."""
        rows = {m.event_id: _unparseable_row(self.name, m) for m in messages}
        dead = self.db.dead_letters
        async with self.db.engine.begin() as conn:
            parked = await insert_new(conn, dead, list(rows.values()), dead.c.id, dead.c.event_id)
        found = {m.event_id: m for m in messages}
        for dead_id, event_id in parked:
            log.error(
                "message that is not an event parked as a dead letter",
                extra={"consumer": self.name, "dead_letter": dead_id, **found[event_id].where()},
            )

    def _after_commit(
        self, events: Sequence[Envelope | Outgoing], callbacks: Sequence[Callable[[], None]]
    ) -> None:
        if events:
            self.db.events_written.set()
        for callback in callbacks:
            callback()

    # ---- the admin's levers --------------------------------------------------------

    async def parked(self, state: str | None = PARKED, limit: int = 100) -> list[dict[str, Any]]:
        dead = self.db.dead_letters
        query = select(dead).where(dead.c.consumer == self.name).order_by(dead.c.id).limit(limit)
        if state:
            query = query.where(dead.c.state == state)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [dict(r) for r in rows]

    async def get(self, dead_id: int) -> dict[str, Any]:
        dead = self.db.dead_letters
        async with self.db.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(dead).where(dead.c.id == dead_id, dead.c.consumer == self.name)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no dead letter {dead_id}")
        return dict(row)

    async def retry(self, dead_id: int, by: str) -> list[dict[str, Any]]:
        """Run the parked event again, then those parked behind it, in order; stop at the
        first that fails again. Returns the dead letters as they now are."""
        row = await self.get(dead_id)
        if row["state"] != PARKED:
            raise IllegalTransition(f"dead letter {dead_id} is {row['state']}, not parked")
        if row["behind"] is not None:
            raise IllegalTransition(
                f"dead letter {dead_id} waits behind dead letter {row['behind']}: "
                "retry or discard that one first"
            )
        key = row["key"]
        if row["event_type"] == UNPARSEABLE:
            key = await self._read_again(row, by)
            if key is None:
                return [await self.get(dead_id)]
        return await self._release(key, by)

    async def _read_again(self, row: Mapping[str, Any], by: str) -> str | None:
        """A message parked unread, read now (still unreadable: 409), whose ticket has
        parked events joins their queue as the event it is, claimed like any parked event:
        parked before the head, it becomes the head; after, it waits behind it. Returns the
        key whose queue runs now (its own while its ticket has nothing parked, as before),
        or None: it waits, or it came again readable and was handled already."""
        envelope = _envelope_of(row)
        dead, dead_id = self.db.dead_letters, row["id"]
        async with self.db.engine.begin() as conn:
            head = (await self.db.parked_heads(conn, self.name, [envelope.key])).get(envelope.key)
            if head is None:
                return str(row["key"])
            fresh = await self.db.claim(conn, self.name, [str(envelope.event_id)])
            values: dict[str, Any] = {
                "event_type": envelope.type,
                "key": envelope.key,
                "payload": envelope.to_json().decode(),
                "behind": None if dead_id < head else head,
            }
            if not fresh:
                values.update(state=RETRIED, resolved_at=datetime.now(UTC), resolved_by=by)
            elif dead_id < head:  # the ticket's parked events now wait behind it
                queue = and_(
                    dead.c.consumer == self.name, dead.c.key == envelope.key, dead.c.state == PARKED
                )
                await conn.execute(update(dead).where(queue).values(behind=dead_id))
            await conn.execute(update(dead).where(dead.c.id == dead_id).values(values))
        log.warning(
            "dead letter read again joined its ticket's parked events",
            extra={"consumer": self.name, "dead_letter": dead_id, "head": head, "by": by},
        )
        return envelope.key if fresh and dead_id < head else None

    async def discard(self, dead_id: int, by: str) -> list[dict[str, Any]]:
        """Give up on the event for good; the events parked behind it then run in order."""
        row = await self.get(dead_id)
        if row["state"] != PARKED:
            raise IllegalTransition(f"dead letter {dead_id} is {row['state']}, not parked")
        dead = self.db.dead_letters
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(dead)
                .where(dead.c.id == dead_id)
                .values(state=DISCARDED, resolved_at=datetime.now(UTC), resolved_by=by)
            )
        log.warning(
            "dead letter discarded",
            extra={"consumer": self.name, "dead_letter": dead_id, "by": by},
        )
        released = await self._release(row["key"], by) if row["behind"] is None else []
        return [await self.get(dead_id), *released]

    async def _release(self, key: str, by: str) -> list[dict[str, Any]]:
        """Run the parked events of ``key`` in order, each in its own transaction, until
        one fails again (it becomes the head the others wait behind). Events parked
        meanwhile are picked up by the next round."""
        dead = self.db.dead_letters
        done: list[int] = []
        while True:
            async with self.db.engine.connect() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(dead.c.id)
                            .where(
                                dead.c.consumer == self.name,
                                dead.c.key == key,
                                dead.c.state == PARKED,
                            )
                            .order_by(dead.c.id)
                        )
                    )
                    .scalars()
                    .all()
                )
            if not ids:
                break
            for position, dead_id in enumerate(ids):
                ok = await self._rerun(dead_id, ids[position + 1 :], by)
                done.append(dead_id)
                if not ok:
                    return [await self.get(i) for i in done]
        return [await self.get(i) for i in done]

    async def _rerun(self, dead_id: int, followers: Sequence[int], by: str) -> bool:
        dead = self.db.dead_letters
        row = await self.get(dead_id)
        envelope = _envelope_of(row)  # still not an event: 409, before anything changes
        unread = row["event_type"] == UNPARSEABLE
        handler = self.handlers.get(envelope.type)
        now = datetime.now(UTC)
        error = ""
        uow: UnitOfWork | None = None
        token = trace_id_var.set(envelope.trace_id)
        try:
            async with self.db.engine.begin() as conn:
                uow = UnitOfWork(conn)
                try:
                    async with conn.begin_nested():
                        # parked unread, it was never claimed: claimed now with its effects
                        # (nothing runs if the event came again, readable, and was handled)
                        fresh = not unread or await self.db.claim(
                            conn, self.name, [str(envelope.event_id)]
                        )
                        if handler is not None and fresh:
                            await handler(self.ctx, uow, envelope)
                except Exception as exc:  # noqa: BLE001 - recorded on the dead letter
                    if is_outage(exc) or conn.invalidated:
                        raise
                    error = f"{type(exc).__name__}: {exc}"[:4000]
                if error:
                    values: dict[str, Any] = {
                        "attempts": dead.c.attempts + 1,
                        "error": error,
                        "last_failed_at": now,
                        "behind": None,
                    }
                    await conn.execute(update(dead).where(dead.c.id == dead_id).values(values))
                    if followers:  # the rest now wait behind this one
                        await conn.execute(
                            update(dead).where(dead.c.id.in_(followers)).values(behind=dead_id)
                        )
                else:
                    await self.db.write_outbox(conn, uow.events)
                    await conn.execute(
                        update(dead)
                        .where(dead.c.id == dead_id)
                        .values(state=RETRIED, resolved_at=now, resolved_by=by)
                    )
        finally:
            trace_id_var.reset(token)
        if not error:
            self._after_commit(uow.events, uow.after_commit)
        log.warning(
            "dead letter failed again" if error else "dead letter retried",
            extra={"consumer": self.name, "dead_letter": dead_id, "by": by},
        )
        return not error

    async def parked_count(self) -> int:
        from sqlalchemy import func

        dead = self.db.dead_letters
        async with self.db.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(dead)
                .where(dead.c.consumer == self.name, dead.c.state == PARKED)
            )
        return int(count or 0)


# an id's 32 hex digits, in the groups its text joins with hyphens (``id_texts``)
_ID_GROUPS = re.compile(r"(.{8})(.{4})(.{4})(.{4})(.{12})", re.S)


def id_texts(events: Sequence[Header]) -> list[str]:
    """Each event's id as its hyphenated text, ``str(event_id)`` (as the inboxes hold it),
    made for all the events at once: their ids' numbers written as hex digits in one
    formatting and cut into their groups in one pass, both in C (``UUID.__str__`` does both
    in Python for each id: ~0.5 us, ~8 consumed events a ticket)."""
    numbers = tuple([e.event_id.int for e in events])
    return list(map("-".join, _ID_GROUPS.findall(("%032x" * len(numbers)) % numbers)))


class _FellBack(Exception):
    """The fast path failed: its transaction is rolled back, the batch goes event by event."""


def _runs(
    batch: Sequence[Header], many: Mapping[str, ManyHandler], distinct: bool | None = None
) -> list[list[Header]]:
    """``batch`` cut into what the fast path hands over at once. Each event goes to a
    layer one above the previous event of its ticket (it must see that one's effects);
    a layer's events of one type with a ``many`` handler form one run. Other events go
    alone, in a layer of their own between everything before and after them. Layers run
    in order; within a layer tickets are independent. ``distinct``: True when the caller
    knows ``batch`` holds one event a ticket (its keys not read again), None: not known."""
    if distinct is None:
        distinct = len({e.key for e in batch}) == len(batch)
    if distinct and all(e.type in many for e in batch):
        # as nearly always: one event a ticket, each with a ``many`` handler, so all in the
        # first layer, a run a type, in the order the types first come
        by_type: dict[str, list[Header]] = {}
        for envelope in batch:
            by_type.setdefault(envelope.type, []).append(envelope)
        return list(by_type.values())
    runs: dict[tuple[int, str], list[Header]] = {}
    layer_of: dict[str, int] = {}
    floor, top = 0, -1
    for envelope in batch:
        if envelope.type in many:
            layer = max(layer_of.get(envelope.key, -1) + 1, floor)
            runs.setdefault((layer, envelope.type), []).append(envelope)
        else:
            layer = top + 1
            runs[(layer, str(envelope.event_id))] = [envelope]
            floor = layer + 1
        layer_of[envelope.key] = layer
        top = max(top, layer)
    # dicts keep insertion order, so a layer's runs stay in the order they began
    return [run for (layer, _), run in sorted(runs.items(), key=lambda item: item[0][0])]


# the mark of a set-based handler that gives what it emits its cause's trace id (``traced``)
OWN_TRACES = "emits_under_own_trace_ids"


def traced(handler: ManyHandler) -> ManyHandler:
    """Marks ``handler`` (a set-based one) as emitting each event under the trace id of the
    event of the run it is about (``Event.outgoing_run``'s ``trace_ids``; ``trace_id_var``
    set to that event's for what it hands on one by one): the consumer does not go over what
    it emitted again (``_own_trace_ids``)."""
    setattr(handler, OWN_TRACES, True)
    return handler


def _own_trace_ids(events: list[Envelope | Outgoing], emitted: int, run: Sequence[Header]) -> None:
    """A set-based run is handled under its first event's trace id; what it emitted (from
    ``events[emitted:]``) about each ticket of the run carries that ticket's own trace id,
    so one ticket can still be followed across services (a run never holds two events of
    one ticket)."""
    if emitted == len(events):  # nothing emitted (as for most runs of some consumers)
        return
    traces = {e.key: e.trace_id for e in run}
    for i in range(emitted, len(events)):
        trace = traces.get(events[i].key, events[i].trace_id)
        if trace != events[i].trace_id:
            events[i] = events[i].with_trace_id(trace)


def _unparseable_row(consumer: str, message: Unparseable) -> dict[str, Any]:
    """The dead letter of a message that is not an event. Its id is its own key, so it
    waits behind nothing and nothing waits behind it. The raw bytes are kept as text when
    they are UTF-8 (most such messages are broken JSON: readable as they are, to see what is
    wrong), else in base64 (any bytes, a third larger, ``base64 -d`` gives them back)."""
    try:
        raw, encoding = message.value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(message.value).decode("ascii"), "base64"
    now = datetime.now(UTC)
    payload = {
        "raw": raw,
        "raw_encoding": encoding,
        "bytes": len(message.value),
        "partition": message.partition,
        "offset": message.offset,
        "key": message.key,
    }
    return {
        "consumer": consumer,
        "event_id": message.event_id,
        "event_type": UNPARSEABLE,
        "topic": message.topic[:100],
        "key": message.event_id,
        "payload": orjson.dumps(payload).decode(),
        "error": message.error,
        "attempts": 1,
        "behind": None,
        "state": PARKED,
        "first_failed_at": now,
        "last_failed_at": now,
    }


def _envelope_of(row: Mapping[str, Any]) -> Envelope:
    """The event a dead letter holds. One parked unread is read again from its raw bytes;
    if it still cannot be, that is a 409 naming why (retrying cannot change the bytes)."""
    if row["event_type"] != UNPARSEABLE:
        return Envelope.from_json(row["payload"])
    payload = orjson.loads(row["payload"])
    raw = payload["raw"]
    value = raw.encode() if payload["raw_encoding"] == "utf-8" else base64.b64decode(raw)
    try:
        return Envelope.from_json(value)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the message's
        raise IllegalTransition(
            f"dead letter {row['id']} is still not an event ({parse_error(exc)}): discard "
            "it, or retry it once this service can read it",
            reason="unparseable",
        ) from None


def _dead_row(
    consumer: str, event: Header, error: str, attempts: int, *, behind: int | None = None
) -> dict[str, Any]:
    envelope = event.as_envelope()
    now = datetime.now(UTC)
    return {
        "consumer": consumer,
        "event_id": str(envelope.event_id),
        "event_type": envelope.type,
        "topic": envelope.topic,
        "key": envelope.key,
        "payload": envelope.to_json().decode(),
        "error": error,
        "attempts": attempts,
        "behind": behind,
        "state": PARKED,
        "first_failed_at": now,
        "last_failed_at": now,
    }
