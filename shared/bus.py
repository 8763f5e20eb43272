"""The bus every service publishes to and consumes from: an embedded durable log or Apache
Kafka, with the same semantics.

- ``publish`` appends and returns; it never waits for a consumer.
- Each consumer group has its own committed position; a group that subscribes late or
  restarts receives every event after its position (``earliest`` for a new group).
- A group's handler receives a **batch** (what the broker has, up to ``batch_size``). If the
  handler raises, that is an outage (database or broker down): the same batch is retried
  with back-off, logged once when the outage starts and once when it ends. Failures of one
  event are the handler's business (``shared.consumer`` parks them as dead letters).
- Every group runs in a **supervised** task: if it dies it is logged and restarted;
  ``consumer_states`` says which groups are running (``/readyz``).
- A message that is not an envelope (not JSON, not UTF-8, no ``event_id``, a field of the
  wrong type) is never retried: trying again cannot make it parse. It goes, with where it
  was, to the group's ``unparseable`` callback (``shared.consumer`` parks it as a dead
  letter) in the same round as the rest of its batch, and the group moves on past it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from shared.aio import wait_set
from shared.events import TOPICS, Envelope, Event, Header, Outgoing
from shared.events.base import reader

log = logging.getLogger("hotline.bus")
# a batch's events: ``Envelope``s, but those of the types a group reads as their models
# (``subscribe``'s ``models``), ``Received``
BatchHandler = Callable[[Sequence[Header]], Awaitable[None]]
TRACE_HEADER = "trace-id"


class RawEvent(NamedTuple):
    """An envelope already serialised (as the outbox stores it): the relay sends these
    without parsing and re-encoding each one."""

    topic: str
    key: str
    value: bytes
    trace_id: str | None = None


def per_event(handler: Callable[[Envelope], Awaitable[None]]) -> BatchHandler:
    """A batch handler that hands each event of the batch to ``handler`` in turn."""

    async def each(batch: Sequence[Header]) -> None:
        for event in batch:
            await handler(event.as_envelope())

    return each


_TRACE = re.compile(rb'"trace_id":"([0-9A-Za-z._:-]{1,128})"')
# an envelope as ``Envelope.to_json`` writes it begins with its id and its type (``decode``
# reads the type there without parsing; elsewhere, the envelope is parsed as always)
_TYPE = re.compile(rb'\{"event_id":"[^"]{1,64}","type":"([^"]{1,100})"')


def trace_of(value: bytes) -> str | None:
    """The trace id in a serialised envelope, without parsing it (the relay sends the
    outbox's bytes as they are; this puts the trace id in the Kafka headers too)."""
    found = _TRACE.search(value)
    return found.group(1).decode() if found else None


_M32, _MIX = 0xFFFFFFFF, 0x5BD1E995
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # a key's little-endian 32-bit words


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` (the Java client's ``Utils.murmur2``, as aiokafka's
    ``murmur2``), four bytes at a time: aiokafka's pure-Python one reads byte by byte and
    cost ~6-9 us a key, once for every event the relay sends."""
    length = len(data)
    whole = length >> 2
    words = _WORDS[whole] if whole < len(_WORDS) else struct.Struct(f"<{whole}I")
    h = 0x9747B28C ^ length
    for k in words.unpack_from(data):
        k = (k * _MIX) & _M32
        h = ((h * _MIX) & _M32) ^ (((k ^ (k >> 24)) * _MIX) & _M32)
    tail = length & 3
    if tail:
        end = whole * 4
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _MIX) & _M32
    h = ((h ^ (h >> 13)) * _MIX) & _M32
    return h ^ (h >> 15)


@lru_cache(maxsize=16384)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition (of ``partitions``, numbered from 0) that Kafka's default partitioner,
    aiokafka's ``producer.send`` among them, chooses for ``key``; remembered for the keys
    seen lately (a ticket's events often leave together)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def decode(
    values: Sequence[bytes | None],
    types: frozenset[str] | None,
    unless: Mapping[str, re.Pattern[bytes]] | None = None,
    models: Mapping[str, type[Event]] | None = None,
) -> tuple[list[Header], list[tuple[int, str]]]:
    """The events among ``values`` whose type is in ``types`` (all when None), and the
    values that are not envelopes: (index in ``values``, why). A value whose type is read
    and not wanted is passed over before being parsed (most of a topic is of no interest to
    a group), and so is one of a type in ``unless`` whose bytes match that type's pattern
    (the events of a wanted type that the group can tell are of no interest to it without
    parsing them); one whose type cannot be read is parsed, so garbage is never passed
    over silently: every group reading the topic reports it (it is of interest to nobody,
    but nobody can tell that without reading it). An event of a type in ``models`` is read
    in one pass as that model (``Received``) when it can be (``read``), else as an
    ``Envelope`` (refused, or to be upcast, as ever)."""
    wanted: list[Header] = []
    bad: list[tuple[int, str]] = []
    # the types as the bytes a value holds them in: each value's type is compared as it is,
    # not decoded first (a quarter of passing a value over; nor can bytes that are not UTF-8
    # where the type is make it raise)
    kinds = None if types is None else {t.encode() for t in types}
    by_kind = {t.encode(): reader(m) for t, m in models.items()} if models else {}
    match = _TYPE.match
    for i, value in enumerate(values):
        if value is not None and (kinds is not None or by_kind):
            found = match(value)
            if found is not None:
                kind = found[1]
                if kinds is not None and kind not in kinds:
                    continue
                only = unless.get(kind.decode()) if unless else None
                if only is not None and only.search(value):
                    continue
                read_one = by_kind.get(kind)
                received = read_one(value) if read_one is not None else None
                if received is not None:
                    wanted.append(received)
                    continue
        try:
            wanted.append(Envelope.from_json(value if value is not None else b""))
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the message's
            bad.append((i, parse_error(exc)))
    return wanted, bad


def parse_error(exc: BaseException) -> str:
    """Why a message is not an envelope, without the message's content (a validation
    error's text quotes the offending values: a requester's phone, say)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'envelope'}: {e['msg']}" for e in errors[:10]
        )
        return f"not a valid envelope: {where}"[:1000]
    return f"{type(exc).__name__}: {exc}"[:1000]


_UNPARSEABLE_IDS = uuid.UUID("5b0f6d1e-2f0a-4c52-9a57-3c1d2e0f9a11")


@dataclass(frozen=True)
class Unparseable:
    """A message on the bus that is not an envelope, and where it was: ``topic`` (without
    the prefix), ``partition`` and ``offset`` on Kafka, ``offset`` = the log position in the
    embedded log; ``key`` is the message's key (a ticket id, as the producer meant it)."""

    topic: str
    value: bytes
    error: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None

    @property
    def event_id(self) -> str:
        """The id its dead letter goes by (it has no event id of its own): the same bytes on
        the same topic are the same message, delivered again or published again as it
        was, so they are parked once. A UUID v5: never an event's own id (v7)."""
        digest = hashlib.sha256(self.value).hexdigest()
        return str(uuid.uuid5(_UNPARSEABLE_IDS, f"{self.topic}\n{digest}"))

    def where(self) -> dict[str, Any]:
        """What a log line may say about it: where it was and why it is not an event, never
        what it holds (it may hold personal data)."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "bytes": len(self.value),
            "error": self.error[:300],
        }


UnparseableHandler = Callable[[Sequence[Unparseable]], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, events: Sequence[Envelope | Outgoing]) -> None: ...

    async def publish_raw(self, events: Sequence[RawEvent]) -> None: ...

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: BatchHandler,
        types: Types | None = None,
        *,
        unparseable: UnparseableHandler | None = None,
        models: Mapping[str, type[Event]] | None = None,
    ) -> None: ...

    async def unsubscribe(self, group: str) -> None: ...

    def consumer_states(self) -> dict[str, str]: ...

    def consumed(self) -> dict[str, tuple[int, int]]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Relay(Protocol):
    async def relay_once(self) -> int: ...


RUNNING, RETRYING, RESTARTING, STOPPED = "running", "retrying", "restarting", "stopped"


@dataclass(eq=False)
class _Subscription:
    group: str
    topics: frozenset[str]
    handler: BatchHandler
    # the event types the group handles (None: all; LiveTypes: read for each batch)
    types: frozenset[str] | LiveTypes | None = None
    # where the messages that are not envelopes go (None: logged and passed over)
    unparseable: UnparseableHandler | None = None
    # the types read straight into their event models (``Received``), by type
    models: Mapping[str, type[Event]] = field(default_factory=dict)
    state: str = STOPPED
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    position: int = 0  # embedded log: last position handled (0 = nothing yet)
    behind: dict[Any, int] = field(default_factory=dict)  # Kafka: lag per partition
    handled: dict[Any, int] = field(default_factory=dict)  # Kafka: next offset to handle
    lag_read_at: float = float("-inf")  # Kafka: when ``behind`` was last read from the broker
    # Kafka: between joining (or losing its partitions in a rebalance) and being assigned
    # partitions, when the consumer holds none and its lag cannot be read: the last stays
    rebalancing: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    progressed: asyncio.Event = field(default_factory=asyncio.Event)
    busy_since: float | None = None  # when the batch in hand was handed to the handler
    batches: int = 0  # batches the handler took since the process started
    events: int = 0  # events in them
    consumer: Any = None  # Kafka: the group's live aiokafka consumer (for diagnostics)


class Wanted(NamedTuple):
    """The event types a group takes at the moment: ``types``, but of a type in ``unless``
    not the messages whose bytes match its pattern (``decode``)."""

    types: Collection[str]
    unless: Mapping[str, re.Pattern[bytes]] = {}


class LiveTypes:
    """The event types a group takes when they change while it runs: of ``handled`` (the
    types its handler handles), those ``now()`` names (a ``Wanted``, or just types), read
    afresh for every batch after it is fetched and before it is decoded, so a message of a
    type nobody wants at that moment is passed over unparsed. Read after the fetch: a type
    wanted from some moment on is decoded in every batch fetched after it, so in every
    event published after that moment. If ``now()`` fails (the database it reads is down)
    or takes longer than ``timeout``, the batch is decoded for every type ``handled`` (as
    without it): the handler judges each event then, as always."""

    def __init__(
        self,
        handled: Collection[str],
        now: Callable[[], Awaitable[Wanted | Collection[str]]],
        *,
        timeout: float = 5.0,
    ) -> None:
        self.handled = frozenset(handled)
        self.now = now
        self.timeout = timeout
        self.failing = False

    async def read(self) -> Wanted:
        try:
            async with asyncio.timeout(self.timeout):
                wanted = await self.now()
        except Exception as exc:  # noqa: BLE001 - every type then: nothing is passed over
            if not self.failing:
                self.failing = True
                log.warning(
                    "a consumer's wanted event types cannot be read; taking every type",
                    extra={"error": repr(exc)[:300]},
                )
            return Wanted(self.handled)
        if self.failing:
            self.failing = False
            log.warning("a consumer's wanted event types are read again")
        if not isinstance(wanted, Wanted):
            wanted = Wanted(wanted)
        return Wanted(self.handled.intersection(wanted.types), wanted.unless)


Types = Collection[str] | LiveTypes


def _types(types: Types | None) -> frozenset[str] | LiveTypes | None:
    if types is None or isinstance(types, LiveTypes):
        return types
    return frozenset(types)


async def _types_now(sub: _Subscription) -> Wanted | None:
    """The types of the group's next batch (``LiveTypes`` read now); None: every type."""
    types = sub.types
    if types is None or isinstance(types, frozenset):
        return None if types is None else Wanted(types)
    return await types.read()


def _decode(
    values: Sequence[bytes | None], wanted: Wanted | None, models: Mapping[str, type[Event]]
) -> tuple[list[Header], list[tuple[int, str]]]:
    if wanted is None:
        return decode(values, None, models=models)
    return decode(values, frozenset(wanted.types), wanted.unless, models)


async def _deliver(
    sub: _Subscription,
    batch: Sequence[Header],
    bad: Sequence[Unparseable] = (),
    *,
    abandon: asyncio.Event | None = None,
    max_delay: float = 10.0,
) -> bool:
    """Hand ``batch`` to the group's handler, and the messages of its round that are not
    envelopes (``bad``) to the group's ``unparseable`` callback, until both take them (each
    is idempotent: a round handed over again changes nothing). A failure here is an
    outage: retried with back-off, logged when it starts and when it ends, not per retry.
    Returns False once ``abandon`` is set while the round is failing (the partitions are
    being revoked): at once, not at the end of the back-off, so a rebalance never waits
    out an outage's retries."""
    if bad and sub.unparseable is None:
        _pass_over(sub, bad)
        bad = ()
    sub.busy_since = time.monotonic()
    try:
        taken = await _deliver_until_taken(sub, batch, bad, abandon or asyncio.Event(), max_delay)
    finally:
        sub.busy_since = None
    if taken and batch:
        sub.batches += 1
        sub.events += len(batch)
    return taken


def _pass_over(sub: _Subscription, bad: Sequence[Unparseable]) -> None:
    """A group with nowhere to park (no database: the console's live board) logs each
    message it cannot parse, where it was and why, never what it holds, and goes on."""
    for message in bad:
        log.error(
            "message on the bus is not an event; passed over",
            extra={"group": sub.group, **message.where()},
        )


async def _hand_over(
    sub: _Subscription, batch: Sequence[Header], bad: Sequence[Unparseable]
) -> None:
    if bad and sub.unparseable is not None:
        await sub.unparseable(bad)
    if batch:
        await sub.handler(batch)


async def _deliver_until_taken(
    sub: _Subscription,
    batch: Sequence[Header],
    bad: Sequence[Unparseable],
    abandon: asyncio.Event,
    max_delay: float,
) -> bool:
    delay = 0.1
    failing_since: float | None = None
    while True:
        try:
            await _hand_over(sub, batch, bad)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an outage: retried until it ends
            if failing_since is None:
                failing_since = time.monotonic()
                sub.state = RETRYING
                log.warning(
                    "consumer cannot handle its batch; retrying with back-off until it can",
                    exc_info=True,
                    extra={"group": sub.group, "events": len(batch), "error": repr(exc)[:300]},
                )
            # jitter: two instances whose batches collided must not collide again
            if abandon.is_set() or await wait_set(abandon, delay * random.uniform(0.5, 1.5)):
                sub.state = RUNNING
                return False
            delay = min(delay * 2, max_delay)
            continue
        if failing_since is not None:
            sub.state = RUNNING
            log.warning(
                "consumer recovered",
                extra={
                    "group": sub.group,
                    "outage_seconds": round(time.monotonic() - failing_since, 1),
                },
            )
        return True


WATCH_EVERY, WATCH_SLOW = 10.0, 30.0


def _awaiting(task: asyncio.Task[Any]) -> str:
    """The chain of coroutines a suspended task is waiting in, innermost last."""
    lines: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(lines) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)[-3000:]


async def _watch(sub: _Subscription) -> None:
    """Log (once per batch) a batch that has been in the handler for more than
    ``WATCH_SLOW`` seconds, with where the consumer waits: a stuck consumer is never silent."""
    reported: float | None = None
    while True:
        await asyncio.sleep(WATCH_EVERY)
        since = sub.busy_since
        if since is None or since == reported or time.monotonic() - since < WATCH_SLOW:
            continue
        reported = since
        stack = _awaiting(sub.task) if sub.task is not None else ""
        log.warning(
            "consumer batch still in hand",
            extra={"group": sub.group, "seconds": round(time.monotonic() - since), "stack": stack},
        )


async def _supervise(sub: _Subscription, run: Callable[[], Awaitable[None]]) -> None:
    """Run a group's consumer loop forever: if it dies, log it and start it again. A
    watchdog logs a batch stuck in the handler."""
    watchdog = asyncio.create_task(_watch(sub), name=f"watch:{sub.group}")
    try:
        await _supervised(sub, run)
    finally:
        watchdog.cancel()


async def _supervised(sub: _Subscription, run: Callable[[], Awaitable[None]]) -> None:
    delay = 0.5
    while True:
        started = time.monotonic()
        sub.state = RUNNING
        try:
            await run()
            raise RuntimeError("consumer loop returned")
        except asyncio.CancelledError:
            sub.state = STOPPED
            raise
        except Exception:
            sub.state = RESTARTING
            sub.restarts += 1
            if time.monotonic() - started > 60:
                delay = 0.5
            log.exception(
                "consumer died; restarting it",
                extra={"group": sub.group, "restarts": sub.restarts, "retry_in": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
            pass


_LOG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS log ("
    " pos INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL,"
    " value BLOB NOT NULL, trace_id TEXT)",
    "CREATE INDEX IF NOT EXISTS log_topic_pos ON log (topic, pos)",
    "CREATE TABLE IF NOT EXISTS positions (grp TEXT PRIMARY KEY, pos INTEGER NOT NULL)",
)


class _Groups:
    """What both buses tell about their consumer groups."""

    _subs: dict[str, _Subscription]

    def consumer_states(self) -> dict[str, str]:
        return {group: sub.state for group, sub in self._subs.items()}

    def consumed(self) -> dict[str, tuple[int, int]]:
        """Batches each group's handler took here and the events in them (counters)."""
        return {group: (sub.batches, sub.events) for group, sub in self._subs.items()}


class LogBus(_Groups):
    """Embedded mode: a durable append-only log in a SQLite file (or in memory for tests)
    with a committed position per consumer group — Kafka's semantics in one process.

    ``publish`` appends and returns. Each group's task reads from its position, hands the
    batch to its handler, then commits the new position; so a slow or failing consumer
    never holds up a producer or another group, and a group that starts late or restarts
    still receives everything it has not handled. ``drain`` waits until every group has
    caught up (tests and the embedded harness use it instead of sleeping)."""

    def __init__(
        self, path: str | Path | None = None, *, batch_size: int = 500, poll_seconds: float = 5.0
    ) -> None:
        self.path = str(path) if path else ":memory:"
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._subs: dict[str, _Subscription] = {}
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._end = 0
        self._started = False

    # ---- lifecycle ---------------------------------------------------------------

    async def _open(self) -> None:
        if self._conn is not None:
            return
        import aiosqlite

        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
            await conn.execute(f"PRAGMA {pragma}")
        for statement in _LOG_SCHEMA:
            await conn.execute(statement)
        await conn.commit()
        async with conn.execute("SELECT coalesce(max(pos), 0) FROM log") as cur:
            row = await cur.fetchone()
        self._end = int(row[0]) if row else 0
        self._conn = conn

    async def start(self) -> None:
        """Open the log and start every subscribed group (later subscribers start at once)."""
        await self._open()
        self._started = True
        for sub in self._subs.values():
            await self._start_group(sub)

    async def stop(self) -> None:
        await _cancel([s.task for s in self._subs.values() if s.task is not None])
        for sub in self._subs.values():
            sub.task, sub.state = None, STOPPED
        self._started = False
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: BatchHandler,
        types: Types | None = None,
        *,
        unparseable: UnparseableHandler | None = None,
        models: Mapping[str, type[Event]] | None = None,
    ) -> None:
        if group in self._subs:
            raise ValueError(f"group {group!r} already subscribed")
        sub = _Subscription(
            group, frozenset(topics), handler, _types(types), unparseable, dict(models or {})
        )
        self._subs[group] = sub
        if self._started:
            sub.state = RESTARTING  # until its task runs
            asyncio.get_running_loop().create_task(self._start_group(sub))

    async def unsubscribe(self, group: str) -> None:
        sub = self._subs.pop(group, None)
        if sub is not None and sub.task is not None:
            await _cancel([sub.task])

    async def _start_group(self, sub: _Subscription) -> None:
        if sub.task is not None:
            return
        async with self._lock:
            async with self._conn.execute(
                "SELECT pos FROM positions WHERE grp = ?", (sub.group,)
            ) as cur:
                row = await cur.fetchone()
        sub.position = int(row[0]) if row else 0
        sub.state = RUNNING
        sub.task = asyncio.create_task(
            _supervise(sub, lambda: self._consume(sub)), name=f"consume:{sub.group}"
        )

    # ---- producing -----------------------------------------------------------------

    async def publish(self, events: Sequence[Envelope | Outgoing]) -> None:
        await self.publish_raw([RawEvent(e.topic, e.key, e.to_json(), e.trace_id) for e in events])

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        if not events:
            return
        await self._open()
        async with self._lock:
            await self._conn.executemany(
                "INSERT INTO log (topic, key, value, trace_id) VALUES (?, ?, ?, ?)",
                [(e.topic, e.key, e.value, e.trace_id or trace_of(e.value)) for e in events],
            )
            await self._conn.commit()
            async with self._conn.execute("SELECT max(pos) FROM log") as cur:
                row = await cur.fetchone()
            self._end = int(row[0])
        for sub in self._subs.values():
            sub.wake.set()

    # ---- consuming -----------------------------------------------------------------

    async def _read(self, sub: _Subscription) -> tuple[list[Header], list[Unparseable], int]:
        """The next batch for ``sub``, the messages among it that are not envelopes, and the
        position it reaches (events of other topics are passed over)."""
        marks = ",".join("?" for _ in sub.topics)
        async with self._lock:
            end = self._end
            async with self._conn.execute(
                "SELECT pos, value, topic, key FROM log WHERE pos > ? AND pos <= ?"
                f" AND topic IN ({marks}) ORDER BY pos LIMIT ?",
                (sub.position, end, *sorted(sub.topics), self.batch_size),
            ) as cur:
                rows = list(await cur.fetchall())
        reached = rows[-1][0] if len(rows) == self.batch_size else end
        batch, errors = _decode([row[1] for row in rows], await _types_now(sub), sub.models)
        bad = []
        for i, why in errors:
            pos, value, topic, key = rows[i]
            bad.append(Unparseable(topic, bytes(value or b""), why, offset=pos, key=key))
        return batch, bad, reached

    async def _commit(self, sub: _Subscription, position: int) -> None:
        async with self._lock:
            await self._conn.execute(
                "INSERT INTO positions (grp, pos) VALUES (?, ?) "
                "ON CONFLICT (grp) DO UPDATE SET pos = excluded.pos",
                (sub.group, position),
            )
            await self._conn.commit()

    async def _consume(self, sub: _Subscription) -> None:
        while True:
            sub.wake.clear()
            if sub.position < self._end:
                batch, bad, reached = await self._read(sub)
                if batch or bad:
                    await _deliver(sub, batch, bad)
                await self._commit(sub, reached)
                sub.position = reached
                sub.progressed.set()
                continue
            sub.progressed.set()
            await wait_set(sub.wake, self.poll_seconds)

    async def drain(self, timeout: float = 30.0, groups: Sequence[str] | None = None) -> None:
        """Wait until every group (or those named) has handled everything published so
        far; TimeoutError names a group that has not."""
        end = self._end
        deadline = time.monotonic() + timeout
        subs = [s for g, s in self._subs.items() if groups is None or g in groups]
        for sub in subs:
            while sub.position < end:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"group {sub.group!r} at {sub.position} of {end} ({sub.state})"
                    )
                sub.progressed.clear()
                if sub.position >= end:
                    break
                await wait_set(sub.progressed, min(left, 0.5))

    @property
    def end(self) -> int:
        """The position of the last event in the log."""
        return self._end

    async def settle(self, *relays: _Relay, timeout: float = 30.0) -> None:
        """Until quiet: every group has caught up and no relay has anything left to send
        (what the consumers emitted is published and handled too)."""
        while True:
            end = self._end
            await self.drain(timeout)
            for relay in relays:
                while await relay.relay_once():
                    pass
            if self._end == end:
                return

    def lag(self) -> dict[str, int]:
        """Events each group has yet to pass (all topics; a cheap upper bound)."""
        return {group: self._end - sub.position for group, sub in self._subs.items()}


# An idle consumer's long poll (aiokafka's default): the broker answers it at the first
# byte of a new record. 5 s (5345e6e) made idle groups ask 1.2 times a second instead of 12
# (bench/idle_fetch.py), but the fault test's pipeline then took 10.5 s instead of 1.3 s to
# drain after Kafka came back, and 11.4 s instead of 6.6–7.6 after a group change: a
# consumer whose fetches failed while the broker was down sits in these waits before it
# asks again. Kept at the values that recover fast (set back in session 26).
IDLE_FETCH_WAIT_MS = 500
# The longest aiokafka's fetch routine sleeps with nothing to wake it (its
# ``consumer_timeout_ms``, 200 by default). Everything it waits for wakes it by itself: a
# fetch's answer, records taken (``getmany``), a partition revoked, assigned, paused or
# resumed, a metadata update; so the timeout only re-checks, and with a fetch always in
# flight (an idle consumer long-polls) it woke each consumer process ~4 times a second for
# nothing (bench/idle_polls.py: ~6 wake-ups of the routine a second, then ~2: the answers).
FETCHER_TIMEOUT_MS = 1_000
# How long an idle consumer's loop waits for records in one ``getmany``: records wake it at
# once; it also wakes in time to commit and to report a minute without records
IDLE_GETMANY_MS = 1_000
# the producer's record batches (per partition): a relay round of a few hundred events goes
# as one batch per partition in one produce request (aiokafka's default, 16 KiB, is ~20
# events). Below the broker's message.max.bytes (1 MiB by default), which a batch must fit.
PRODUCE_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True)
class GroupTiming:
    """How soon a Kafka consumer group notices a change of its members, which stops every
    member's consuming until the group is stable again (README, "Consumer groups").

    - ``heartbeat_ms``: a member hears of a rebalance (another joined or left) at its next
      heartbeat, or sooner at its next commit; until then it goes on consuming.
    - ``session_timeout_ms``: a member the broker has not heard from this long is taken to
      be dead (a SIGKILL, a lost host) and its partitions go to the others; until then they
      wait. A process whose event loop is blocked this long is dropped too, so this is the
      longest pause a member may take (the broker's ``group.min.session.timeout.ms``,
      6 s by default, is the shortest it accepts).
    - ``rebalance_timeout_ms``: how long the broker waits for every member to rejoin. A
      member still handling its batch in hand (``on_partitions_revoked`` waits for it)
      holds up the whole group up to this long; then it is dropped from the round, and its
      batch, whose offsets it can no longer commit, goes to the partitions' new owner."""

    session_timeout_ms: int = 6000
    heartbeat_ms: int = 1000
    rebalance_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_ms * 3 <= self.session_timeout_ms:
            raise ValueError(
                "HOTLINE_KAFKA_HEARTBEAT_MS must be at most a third of"
                " HOTLINE_KAFKA_SESSION_TIMEOUT_MS (a member must miss several heartbeats"
                " before it is taken for dead)"
            )
        if self.rebalance_timeout_ms < self.session_timeout_ms:
            raise ValueError(
                "HOTLINE_KAFKA_REBALANCE_TIMEOUT_MS must be at least"
                " HOTLINE_KAFKA_SESSION_TIMEOUT_MS"
            )


class _Pace:
    """How long a consumer's fetches wait at the broker. Idle: a long poll answered at the
    first byte (an event after a quiet spell goes at once; an idle group costs a fetch
    every ``IDLE_FETCH_WAIT_MS``). Busy (the last fetch brought records): each fetch waits
    up to ``wait_ms`` for ``min_bytes``, so a group takes many events per fetch, per
    transaction and per relay round instead of one each (a few ms of latency per hop
    while under load).

    aiokafka reads these two settings from its fetcher for every request it builds; they
    are not public, so without them (another aiokafka) the consumer keeps the idle pace."""

    def __init__(self, consumer: Any, wait_ms: int, min_bytes: int) -> None:
        fetcher = getattr(consumer, "_fetcher", None)
        known = all(hasattr(fetcher, name) for name in ("_fetch_max_wait_ms", "_fetch_min_bytes"))
        self._consumer = consumer
        self._usable = known and wait_ms > 0
        self.wait_ms, self.min_bytes = wait_ms, min_bytes
        self.busy = False

    def set(self, *, busy: bool) -> None:
        if busy == self.busy or not self._usable:
            return
        self.busy = busy
        fetcher = self._consumer._fetcher
        fetcher._fetch_max_wait_ms = self.wait_ms if busy else IDLE_FETCH_WAIT_MS
        fetcher._fetch_min_bytes = self.min_bytes if busy else 1


def pace_metadata(client: Any, *, after_success: float = 0.1, after_failure: float = 0.5) -> bool:
    """Space a Kafka client's metadata updates: the next one starts ``after_success``
    seconds after one that worked, ``after_failure`` after one that reached no broker.

    aiokafka refreshes metadata with no pause when a fetch finds a partition without a
    leader (its fetcher forces an update and loops on the answer). A consumer whose last
    metadata came while the broker was shutting down (leader -1) therefore spun a core
    for the whole outage, one failed connection after another (25,982 updates in 5 s in
    ``tests/fault/test_bus_outage.py``; aio-libs/aiokafka#1155 is the same loop). The
    update is private to aiokafka, so another version keeps its own pacing: False."""
    update = getattr(client, "_metadata_update", None)
    if update is None or getattr(update, "paced", False):
        return False
    ready_at = 0.0

    async def paced(cluster: Any, topics: Any) -> Any:
        nonlocal ready_at
        wait = ready_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        ok = False
        try:
            ok = await update(cluster, topics)
            return ok
        finally:
            ready_at = time.monotonic() + (after_success if ok else after_failure)

    paced.paced = True  # type: ignore[attr-defined]
    client._metadata_update = paced
    return True


def _as_stored(value: bytes | None) -> bytes | None:
    """A Kafka consumer's value deserializer that leaves the value as it came: the mark of
    the bus's consumers, whose records ``lean_records`` hands over as parsed."""
    return value


@cache
def lean_records() -> bool:
    """Hand the bus's consumers (those whose value deserializer is ``_as_stored``) each
    record as aiokafka's record parser made it (its offset, key and value, all the bus
    reads of it), not copied into a ``ConsumerRecord``: the dataclass of eleven fields
    and its headers' tuple cost ~0.7 us a record (bench/fetch_records.py), for every
    record each group fetches, most of them of types it passes over unparsed. Other
    consumers get their ``ConsumerRecord``s as ever. The parser's records are private to
    aiokafka: with another aiokafka (no ``PartitionRecords._consumer_record``), False and
    every consumer gets ``ConsumerRecord``s."""
    try:
        from aiokafka.consumer import fetcher
    except ImportError:  # pragma: no cover - aiokafka is a dependency
        return False
    base = getattr(fetcher, "PartitionRecords", None)
    if base is None or not callable(getattr(base, "_consumer_record", None)):
        return False
    if getattr(base, "lean", False):
        return True

    class LeanRecords(base):  # type: ignore[misc, valid-type]
        lean = True

        def _consumer_record(self, tp: Any, record: Any) -> Any:
            if self._value_deserializer is _as_stored:
                return record
            return super()._consumer_record(tp, record)

    fetcher.PartitionRecords = LeanRecords
    return True


_BATCH_LENGTH = struct.Struct(">i")  # a record batch's length field, at its 8th byte
# v2 record batch: its CRC-32C covers the bytes from its attributes (the 21st byte) to its end
_CRC_FROM, _LOG_OVERHEAD = 21, 12


def _makes_records_by_name(fetcher_class: type) -> bool:
    """Whether aiokafka's fetcher makes a partition's records through its module's
    ``MemoryRecords`` (0.14: ``Fetcher._proc_fetch_request``). One that stopped doing so
    would leave our check unused while aiokafka's own is off, checking nothing: so
    ``checked_records`` then answers False and aiokafka keeps its own check."""
    return any(
        "MemoryRecords" in getattr(getattr(f, "__code__", None), "co_names", ())
        for f in vars(fetcher_class).values()
    )


@cache
def checked_records() -> bool:
    """Check the CRC-32C of every record batch the consumers fetch with the ``crc32c``
    package (the CPU's CRC instruction, ~20 GB/s here), not aiokafka's own check (a
    table-driven one in its C extension, ~1.9 GB/s: ~8 us for the ~16 KB of records the
    six groups fetch a ticket). Installed as aiokafka's fetcher's ``MemoryRecords`` (the
    fetched bytes of one partition), whose batches are checked as they are read, where
    aiokafka checks them, and raise its ``CorruptRecordException`` as it does; the
    consumers then turn aiokafka's check off (``check_crcs``). Another record format
    (v0/v1) is checked by aiokafka's own. Without the package, or with an aiokafka whose
    fetcher has no ``MemoryRecords`` or no longer makes its records through it
    (``_makes_records_by_name``), False: aiokafka checks them as ever."""
    try:
        from aiokafka.consumer import fetcher
        from aiokafka.errors import CorruptRecordException
        from crc32c import crc32c
    except ImportError:
        return False
    parsed = getattr(fetcher, "MemoryRecords", None)
    if parsed is None or not _makes_records_by_name(fetcher.Fetcher):
        return False
    if getattr(parsed, "checked", False):
        return True
    read: Callable[[bytes], Any] = parsed  # (not None: narrowed for the class below too)
    length = _BATCH_LENGTH.unpack_from

    class CheckedRecords:
        checked = True
        __slots__ = ("_records", "_view", "_at")

        def __init__(self, data: bytes) -> None:
            self._records = read(data)
            self._view = memoryview(data)
            self._at = 0  # where the next batch begins

        def size_in_bytes(self) -> int:
            return self._records.size_in_bytes()  # type: ignore[no-any-return]

        def has_next(self) -> bool:
            return self._records.has_next()  # type: ignore[no-any-return]

        def next_batch(self) -> Any:
            batch = self._records.next_batch()
            if batch is None:
                return None
            start = self._at
            end = self._at = start + _LOG_OVERHEAD + length(self._view, start + 8)[0]
            if batch.magic < 2:
                ok = batch.validate_crc()
            else:
                ok = crc32c(self._view[start + _CRC_FROM : end]) == batch.crc
            if not ok:
                raise CorruptRecordException(f"Invalid CRC - record batch at {batch.base_offset}")
            return batch

    fetcher.MemoryRecords = CheckedRecords
    return True


LAG_FRESH, LAG_TIMEOUT = 2.0, 1.0


async def _behind(consumer: Any, handled: dict[Any, int]) -> dict[Any, int]:
    """Per partition assigned to ``consumer``: events from the position handled here (or
    committed, if further: another instance handled it meanwhile) to the partition's end."""
    assigned = sorted(consumer.assignment())
    if not assigned:
        return {}
    ends = await consumer.end_offsets(assigned)
    committed = await asyncio.gather(*(consumer.committed(tp) for tp in assigned))
    starts: dict[Any, int] | None = None
    behind = {}
    for tp, done in zip(assigned, committed, strict=True):
        position = max(handled.get(tp, -1), -1 if done is None else done)
        if position < 0:  # nothing handled nor committed: the group starts at the earliest
            starts = starts or await consumer.beginning_offsets(assigned)
            position = starts[tp]
        if tp in ends:
            behind[tp] = max(0, ends[tp] - position)
    return behind


TOPICS_READY_TIMEOUT = 60.0
METADATA_MAX_AGE_MS = 30_000


async def await_topics(
    admin: Any, names: Sequence[str], *, timeout: float = TOPICS_READY_TIMEOUT, pause: float = 0.1
) -> None:
    """Wait until the broker's metadata shows each of ``names`` with every partition led.

    A broker answers CreateTopics once its controller has committed them, and its own
    metadata may learn of them a moment later. A consumer that subscribes in that moment
    finds no partitions, joins its group with none assigned, and is given them only at its
    next routine metadata refresh (aiokafka: every 5 minutes): CI saw a fresh broker's
    first consumer take nothing for 120 s. Only topics already created may be asked for
    here: a metadata request for an unknown topic lets the broker create it with its
    default partition count."""
    deadline = time.monotonic() + timeout
    missing = sorted(names)
    while True:
        described = await admin.describe_topics(missing)
        missing = sorted(
            t["topic"]
            for t in described
            if t["error_code"] != 0
            or not t["partitions"]
            or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
        )
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"Kafka topics not ready after {timeout:.0f} s: {missing}")
        await asyncio.sleep(pause)


class KafkaBus(_Groups):
    """Apache Kafka through aiokafka: idempotent producer with ``acks=all``; one consumer
    group per service; offsets are committed only after the handler has stored the batch's
    effects (the inbox makes a redelivery harmless).

    Batches, not requests per event: under load a fetch waits at the broker until
    ``fetch_min_bytes`` are there or ``fetch_wait_ms`` has passed (a few milliseconds of
    latency buy one fetch, one transaction and one relay round for many events; an idle
    consumer long-polls as usual, ``_Pace``), and the handled position is
    committed at most every ``commit_seconds`` (and whenever partitions move or the
    consumer stops): what a crash forgets is delivered again and the inbox drops it.

    A rebalance waits for the batch in hand (``on_partitions_revoked`` takes the batch
    lock) and commits what was handled, so offsets are committed before partitions move; a
    commit that still fails (group changed meanwhile) is logged and the events are
    redelivered to the new owner."""

    def __init__(
        self,
        bootstrap: str,
        *,
        prefix: str = "",
        partitions: int = 3,
        batch_size: int = 500,
        fetch_wait_ms: int = 100,
        fetch_min_bytes: int = 64 * 1024,
        commit_seconds: float = 1.0,
        timing: GroupTiming = GroupTiming(),
    ) -> None:
        self.bootstrap = bootstrap
        self.timing = timing
        self.prefix = prefix
        self.partitions = partitions
        self.batch_size = batch_size
        self.fetch_wait_ms = fetch_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        self.commit_seconds = commit_seconds
        self._subs: dict[str, _Subscription] = {}
        self._producer: Any = None
        self._started = False

    def _topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: BatchHandler,
        types: Types | None = None,
        *,
        unparseable: UnparseableHandler | None = None,
        models: Mapping[str, type[Event]] | None = None,
    ) -> None:
        if group in self._subs:
            raise ValueError(f"group {group!r} already subscribed")
        self._subs[group] = _Subscription(
            group, frozenset(topics), handler, _types(types), unparseable, dict(models or {})
        )
        if self._started:
            self._start_group(self._subs[group])

    async def unsubscribe(self, group: str) -> None:
        sub = self._subs.pop(group, None)
        if sub is not None and sub.task is not None:
            await _cancel([sub.task])

    def lag(self) -> dict[str, int]:
        """Events each group's partitions held here have yet to pass, as of the last
        ``refresh_lag`` (or, without one, the last batch handled). While partitions are
        being reassigned, the last known lag; a group that has none yet (joining) is left
        out: not known, rather than 0."""
        return {
            group: sum(sub.behind.values())
            for group, sub in self._subs.items()
            if sub.behind or not sub.rebalancing
        }

    async def refresh_lag(self) -> None:
        """Read each group's lag from the broker (``/metrics`` calls this before ``lag``):
        the end of each partition held here minus the position handled (or committed, by
        whichever instance). A lag taken only after a batch is handled stays at its last
        value while the consumer retries a batch through a database outage, exactly while
        events pile up. Reused for ``LAG_FRESH`` seconds so scrapes stay cheap; a broker
        that does not answer within ``LAG_TIMEOUT`` leaves the last figure."""
        now = time.monotonic()
        for sub in self._subs.values():
            consumer = sub.consumer
            if consumer is None or sub.rebalancing or now - sub.lag_read_at < LAG_FRESH:
                continue  # (rebalancing: it holds no partitions now; the last figure stays)
            sub.lag_read_at = now
            try:
                async with asyncio.timeout(LAG_TIMEOUT):
                    sub.behind = await _behind(consumer, sub.handled)
            except Exception as exc:  # noqa: BLE001 - a metric: the last figure stays
                log.debug("consumer lag not read", extra={"group": sub.group, "error": repr(exc)})

    async def _ensure_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(self._topic(t), num_partitions=self.partitions, replication_factor=1)
                for t in TOPICS
                if self._topic(t) not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
                await await_topics(admin, [t.name for t in wanted])
        finally:
            await admin.close()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        await self._ensure_topics()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            retry_backoff_ms=500,
            max_batch_size=PRODUCE_BATCH_BYTES,
        )
        await producer.start()
        pace_metadata(producer.client)
        self._producer = producer
        self._started = True
        for sub in self._subs.values():
            self._start_group(sub)

    def _start_group(self, sub: _Subscription) -> None:
        sub.state = RUNNING
        sub.task = asyncio.create_task(
            _supervise(sub, lambda: self._consume(sub)), name=f"consume:{sub.group}"
        )

    async def _consume(self, sub: _Subscription) -> None:
        """One consumer's life: (re)created on every supervised restart."""
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
        from aiokafka.errors import (
            CommitFailedError,
            IllegalStateError,
            KafkaError,
        )

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self._topic(sub.group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            retry_backoff_ms=500,
            max_poll_interval_ms=120_000,
            session_timeout_ms=self.timing.session_timeout_ms,
            heartbeat_interval_ms=self.timing.heartbeat_ms,
            rebalance_timeout_ms=self.timing.rebalance_timeout_ms,
            fetch_max_wait_ms=IDLE_FETCH_WAIT_MS,
            fetch_min_bytes=1,
            consumer_timeout_ms=FETCHER_TIMEOUT_MS,
            # the records as parsed, not ``ConsumerRecord``s (``lean_records``)
            value_deserializer=_as_stored if lean_records() else None,
            check_crcs=not checked_records(),  # (checked as fetched, by ``crc32c``)
            # a partition the group's last metadata lacked is found within this (default 5 min)
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        in_hand = asyncio.Lock()  # held while a batch is handled and committed
        revoking = asyncio.Event()
        # handled but not yet committed: partition → the next offset to read
        pending: dict[Any, int] = {}
        committed_at = time.monotonic()

        async def commit() -> None:
            """Commit what was handled (the caller holds ``in_hand``)."""
            nonlocal committed_at
            committed_at = time.monotonic()
            if not pending:
                return
            offsets = dict(pending)
            pending.clear()
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                # the group moved on (a rebalance); whoever owns the partitions
                # now starts from the last commit, and the inbox drops repeats
                log.info(
                    "offsets not committed (group changed); events will be redelivered",
                    extra={"group": sub.group, "error": repr(exc)[:300]},
                )

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                sub.rebalancing = True
                # let the batch in hand finish and commit before the partitions move
                revoking.set()
                async with in_hand:
                    revoking.clear()
                    await commit()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                sub.rebalancing, sub.lag_read_at = False, float("-inf")  # read it afresh
                sub.behind = {tp: n for tp, n in sub.behind.items() if tp in assigned}
                if assigned:
                    log.info(
                        "partitions assigned",
                        extra={"group": sub.group, "partitions": len(assigned)},
                    )

        sub.rebalancing = True  # joining: no partitions until assigned
        await consumer.start()
        pace = _Pace(consumer, self.fetch_wait_ms, self.fetch_min_bytes)  # its fetcher exists now
        pace_metadata(consumer._client)
        sub.consumer = consumer
        try:
            consumer.subscribe([self._topic(t) for t in sorted(sub.topics)], listener=Listener())
            fetch_failing = False
            last_records, idle_reported = time.monotonic(), False
            while True:
                # busy: a short wait tells soon that the load is over (back to long polls)
                wait_ms = 2 * self.fetch_wait_ms + 10 if pace.busy else IDLE_GETMANY_MS
                if pending:  # wake in time to commit what was handled
                    due = committed_at + self.commit_seconds - time.monotonic()
                    if due <= 0:
                        async with in_hand:
                            await commit()
                        continue
                    wait_ms = max(1, min(wait_ms, int(due * 1000) + 1))
                try:
                    batches = await consumer.getmany(
                        timeout_ms=wait_ms, max_records=self.batch_size
                    )
                    if fetch_failing:
                        fetch_failing = False
                        log.warning("consumer reaches the broker again", extra={"group": sub.group})
                except KafkaError as exc:
                    if not fetch_failing:
                        fetch_failing = True
                        log.warning(
                            "consumer cannot fetch; retrying",
                            extra={"group": sub.group, "error": repr(exc)[:300]},
                        )
                    await asyncio.sleep(1.0)
                    continue
                pace.set(busy=bool(batches))
                if not batches:
                    if time.monotonic() - last_records > 60 and not idle_reported:
                        idle_reported = True
                        await self._report_idle(consumer, sub)
                    continue
                last_records, idle_reported = time.monotonic(), False
                types = await _types_now(sub)  # (not holding the batch lock: it may wait)
                async with in_hand:
                    batch, bad = self._decode(batches, types, sub.models)
                    done = not (batch or bad) or await _deliver(sub, batch, bad, abandon=revoking)
                    if not done:
                        log.info(
                            "batch given up on a rebalance; the new owner receives it again",
                            extra={"group": sub.group},
                        )
                        continue
                    assigned = consumer.assignment()
                    for tp, messages in batches.items():
                        if not messages:
                            continue
                        offset = messages[-1].offset + 1
                        high = consumer.highwater(tp)  # for /metrics (consumer lag)
                        if high is not None:
                            sub.behind[tp] = max(0, high - offset)
                        if tp in assigned:  # a partition lost meanwhile is not ours to commit
                            pending[TopicPartition(tp.topic, tp.partition)] = offset
                            sub.handled[tp] = offset
        finally:
            try:  # what was handled is committed (else it is delivered again: harmless)
                async with asyncio.timeout(5):
                    async with in_hand:
                        await commit()
            except (TimeoutError, Exception):  # noqa: BLE001 - stopping anyway
                log.info("handled offsets not committed at stop", extra={"group": sub.group})
            try:
                await asyncio.wait_for(consumer.stop(), 10)
            except (TimeoutError, Exception):  # noqa: BLE001 - stopping anyway
                log.warning("consumer did not stop cleanly", extra={"group": sub.group})
            sub.consumer = None

    def _decode(
        self, batches: dict[Any, list[Any]], types: Wanted | None, models: Mapping[str, type[Event]]
    ) -> tuple[list[Header], list[Unparseable]]:
        """The fetched records' events of the group's types, and the records that are not
        envelopes, with where they were (records as ``lean_records`` hands them over, or
        ``ConsumerRecord``s: their offset, key and value)."""
        records = [m for messages in batches.values() for m in messages]
        batch, errors = _decode([m.value for m in records], types, models)
        if not errors:
            return batch, []
        where = [tp for tp, messages in batches.items() for _ in messages]
        return batch, [self._unparseable(where[i], records[i], why) for i, why in errors]

    def _unparseable(self, tp: Any, record: Any, error: str) -> Unparseable:
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return Unparseable(
            tp.topic.removeprefix(self.prefix),
            record.value or b"",
            error,
            partition=tp.partition,
            offset=record.offset,
            key=key,
        )

    @staticmethod
    async def _report_idle(consumer: Any, sub: _Subscription) -> None:
        """A minute without records: log, once, whether the partitions have anything the
        group has not committed (a consumer that has work but fetches none is a fault)."""
        behind = {}
        try:
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                committed = await asyncio.wait_for(consumer.committed(tp), 5)
                if high is not None and committed is not None and high > committed:
                    behind[f"{tp.topic}:{tp.partition}"] = high - committed
        except Exception as exc:  # noqa: BLE001 - a diagnostic only
            behind["error"] = repr(exc)[:200]  # type: ignore[assignment]
        if behind:
            log.warning(
                "consumer fetched nothing for a minute while its partitions have events",
                extra={"group": sub.group, "behind": behind},
            )

    async def publish(self, events: Sequence[Envelope | Outgoing]) -> None:
        await self.publish_raw([RawEvent(e.topic, e.key, e.to_json(), e.trace_id) for e in events])

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        """Send all, then wait for every acknowledgement (acks=all): the relay marks its
        rows sent only after this returns.

        The events go as record batches built here, one per partition (more when one
        fills ``PRODUCE_BATCH_BYTES``), in the order given; each event's partition is the
        one ``producer.send`` would choose for its key (aiokafka's default partitioner),
        so one ticket's events stay in one partition, in order. ``send`` per event cost
        ~29 us of CPU an event (its bookkeeping per record, and 16 KiB batches: ~15
        produce requests for a relay round of 225 events of ~0.9 KB); batches built here
        ~8 us, one request a round. Sequence numbers (idempotence) are set when a batch
        leaves, as for ``send``'s own batches."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("Kafka bus is not started")
        # each topic's name on the broker, its partitions and their count, read once a call
        routes: dict[str, tuple[str, list[int], int]] = {}
        open_batches: dict[tuple[str, int], Any] = {}
        futures = []
        for e in events:
            route = routes.get(e.topic)
            if route is None:
                topic = self._topic(e.topic)
                known = sorted(await producer.partitions_for(topic))
                route = routes[e.topic] = (topic, known, len(known))
            topic, known, count = route
            key = e.key.encode()
            where = (topic, known[partition_for(key, count)])
            if e.trace_id:
                headers = [(TRACE_HEADER, e.trace_id.encode())]
            else:  # ``trace_of``, its bytes as the header takes them
                found = _TRACE.search(e.value)
                headers = [(TRACE_HEADER, found.group(1))] if found else []
            batch = open_batches.get(where)
            if batch is not None and (
                batch.append(timestamp=None, key=key, value=e.value, headers=headers) is not None
            ):
                continue
            if batch is not None:  # full: it goes, and the partition's next batch begins
                futures.append(await _send(producer, batch, where))
            batch = open_batches[where] = producer.create_batch()
            # an empty batch takes any record (one larger than the broker takes fails there)
            batch.append(timestamp=None, key=key, value=e.value, headers=headers)
        for where, batch in open_batches.items():
            futures.append(await _send(producer, batch, where))
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        await _cancel([s.task for s in self._subs.values() if s.task is not None])
        for sub in self._subs.values():
            sub.task, sub.state = None, STOPPED
        if self._producer is not None:
            await self._producer.stop()
        self._producer, self._started = None, False


async def _send(producer: Any, batch: Any, where: tuple[str, int]) -> Any:
    """Queue a record batch for its partition; the future of its acknowledgement. Closed
    first, it is complete: it leaves at once rather than lingering for ``send``'s
    records."""
    batch.close()
    return await producer.send_batch(batch, where[0], partition=where[1])


def make_bus(
    url: str,
    *,
    prefix: str = "",
    partitions: int = 3,
    batch_size: int = 500,
    fetch_wait_ms: int = 100,
    fetch_min_bytes: int = 64 * 1024,
    commit_seconds: float = 1.0,
    timing: GroupTiming = GroupTiming(),
) -> LogBus | KafkaBus:
    """``memory://`` an embedded log in memory · ``log:///path/bus.db`` an embedded log in a
    file · ``kafka://host:port[,host:port]`` Apache Kafka."""
    if url.startswith("memory"):
        return LogBus(batch_size=batch_size)
    if url.startswith("log://"):
        return LogBus(url.removeprefix("log://") or None, batch_size=batch_size)
    if url.startswith("kafka://"):
        return KafkaBus(
            url.removeprefix("kafka://"),
            prefix=prefix,
            partitions=partitions,
            batch_size=batch_size,
            fetch_wait_ms=fetch_wait_ms,
            fetch_min_bytes=fetch_min_bytes,
            commit_seconds=commit_seconds,
            timing=timing,
        )
    raise ValueError(f"unknown bus url {url!r} (use memory://, log:///path or kafka://host:port)")
