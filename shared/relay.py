"""Outbox relay: publishes committed events to the bus, in order, retrying until sent."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, text, update

from shared.aio import wait_set
from shared.bus import Bus, RawEvent
from shared.db import Database
from shared.logging import Outage

log = logging.getLogger("hotline.relay")


# The service's relay lock, held to the end of the batch's transaction: one relay at a
# time reads and marks a service's outbox. Its own statement, before the batch's: the
# batch's rows are read in a snapshot taken once the lock is held, so they show every row
# the lock's previous holder marked sent. (Taken inside the batch's statement, the lock
# came after that statement's snapshot, which could predate the previous holder's commit,
# and only ``FOR UPDATE`` re-reading each row kept its rows from being sent again: a row
# lock, one more WAL record and a dirtied page for every row sent; issue 12.)
#
# The batch's commit does not wait for its WAL to reach the disk (synchronous_commit off
# for this transaction alone): its marks are the only thing it writes, and marks a crash
# of PostgreSQL loses only send the batch again (the consumers' inboxes drop the repeats,
# as after a relay's crash between sending and marking). Whatever depends on a mark (the
# retention moving sent rows) commits synchronously, flushing the mark's WAL before its
# own. The relay's commits were ~one in seven of a ticket's commits.
_LOCK_SQL = "SELECT pg_try_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)"
# The next batch, for the lock's holder, marked sent as it is read: one statement, whose
# marking finds each row by where the batch's read found it (its ``ctid``: a TID scan)
# rather than by its id again (a primary key lookup a row, and a second statement a
# batch). The batch is sent before its transaction commits, and a failed send rolls the
# marks back (``_relay_batch_pg``). The rows come in the order of their places (a TID
# scan's), not of their ids: the relay sorts them. The relay's statements run on asyncpg
# directly (fixed SQL, prepared once per connection): SQLAlchemy's wrapping of a statement
# and of its transaction cost more than PostgreSQL's work on them. The payloads come as
# their UTF-8 bytes (what the bus sends), not as str to encode again.
_BATCH_SQL = (
    "UPDATE outbox SET published_at = $2 WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1))"
    " RETURNING id, topic, key, convert_to(payload, 'UTF8')"
)
# (after the batch's transaction is rolled back, without the lock: a row another relay
# has sent meanwhile keeps its record clean)
_FAILED_SQL = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2"
    " WHERE id = ANY($1::integer[]) AND published_at IS NULL"
)
# The idle poll's look (one statement, no transaction, no lock; the partial index on the
# unpublished rows answers it): a batch's transaction only when there is something to send.
_UNPUBLISHED_SQL = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"


_ID = itemgetter(0)


class _Unsent(Exception):
    """Raised inside a batch's transaction whose send failed: its marks are rolled back."""


class OutboxRelay:
    """Sends unpublished outbox rows in ``id`` order, in batches.

    One relay at a time holds a service's outbox (a PostgreSQL advisory lock), so two
    processes of one service can run relays safely and per-key order is kept. A failed
    batch stays in place and is retried with back-off: a bus outage delays events, it does
    not lose them.
    """

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        poll_max_seconds: float | None = None,
        gather_seconds: float = 0.0,
        pace_seconds: float = 0.0,
        retention_seconds: float = 3600.0,
        prune_every_seconds: float = 0.0,
        inbox_retention_seconds: float = 7 * 24 * 3600.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        # an idle relay's looks come further apart while they find nothing, up to this
        # (``_wait_for_rows``); by default eight times ``poll_seconds``
        self.poll_max_seconds = max(
            poll_seconds, 8 * poll_seconds if poll_max_seconds is None else poll_max_seconds
        )
        # after a commit wakes it, the relay waits this long for further commits and sends
        # them together (one transaction and one produce round for many events)
        self.gather_seconds = gather_seconds
        # a busy relay's rounds begin at least this far apart: a commit that wakes it this
        # soon after the last round that sent something waits out the rest (the events
        # of the commits meanwhile go with it, one round for many); after a quiet spell
        # only ``gather_seconds``. A round is a produce request (~1 ms of the broker's
        # CPU, whatever its size) and a transaction with four statements here
        self.pace_seconds = pace_seconds
        self._sent_at = float("-inf")  # when the last round that sent something began
        self.retention = timedelta(seconds=retention_seconds)
        self.inbox_retention = timedelta(seconds=inbox_retention_seconds)
        self.prune_every_seconds = prune_every_seconds
        self._pruned_at = time.monotonic()
        self._prune_lock_key = zlib.crc32(f"prune:{db.service}".encode())
        self._lock_key = zlib.crc32(f"relay:{db.service}".encode())
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage(log, "outbox relay", service=db.service)
        self._idle = asyncio.Lock()  # held while a batch is being sent
        self.batches = self.sent = 0  # batches sent since the process started, events in them

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were sent. One batch at a time per
        relay (``drain`` in tests and the loop may overlap), so no row is sent twice."""
        async with self._idle:
            began = self._now()
            sent = await self._relay_batch()
            if sent:
                self._sent_at = began
            return sent

    async def _relay_batch(self) -> int:
        if self.db.is_postgres:
            return await self._relay_batch_pg()
        outbox = self.db.outbox
        async with self.db.engine.begin() as conn:
            query = (
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            )
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0
            failure = await self._publish([(r.topic, r.key, r.payload.encode()) for r in rows])
            values: dict[str, Any]
            if failure is None:
                values = {"published_at": datetime.now(UTC)}
            else:  # recorded for operators; the rows stay unpublished and are retried
                values = {"attempts": outbox.c.attempts + 1, "last_error": repr(failure)[:2000]}
            await conn.execute(
                update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(values)
            )
        return self._sent(len(rows), failure)

    async def _relay_batch_pg(self) -> int:
        """The batch on PostgreSQL: the relay's lock (no rows without it), then its rows,
        marked sent as they are read, sent, and the marks committed; a failed send rolls
        them back, and the failure is recorded on the rows after (they stay unpublished
        and are retried)."""
        async with self.db.driver_connection() as (_, raw):
            failure: Exception | None = None
            try:
                async with raw.transaction():
                    if not await raw.fetchval(_LOCK_SQL, self._lock_key):
                        return 0
                    rows = await raw.fetch(_BATCH_SQL, self.batch_size, datetime.now(UTC))
                    if not rows:
                        return 0
                    rows.sort(key=_ID)  # in the order they were written
                    failure = await self._publish([(r[1], r[2], r[3]) for r in rows])
                    if failure is not None:
                        raise _Unsent
            except _Unsent:  # the marks are rolled back: recorded for operators
                await raw.execute(_FAILED_SQL, [r[0] for r in rows], repr(failure)[:2000])
        return self._sent(len(rows), failure)

    async def _publish(self, rows: list[tuple[str, str, bytes]]) -> Exception | None:
        """Send (topic, key, payload) rows; the bus's failure, if any (retried later)."""
        try:
            await self.bus.publish_raw([RawEvent(t, k, p) for t, k, p in rows])
        except Exception as exc:  # noqa: BLE001 - any bus failure is retried
            return exc
        return None

    def _sent(self, count: int, failure: Exception | None) -> int:
        if failure is not None:
            raise failure
        self.batches += 1
        self.sent += count
        return count

    async def prune(self, batch_size: int = 5000) -> int:
        """Move sent rows older than the retention period from the outbox to the event
        history, oldest first; returns how many moved (at most ``batch_size``). The
        outbox's newest row always stays: SQLite gives an emptied table's ids out again
        from 1, which the history already holds."""
        outbox, history = self.db.outbox, self.db.event_history
        cutoff = datetime.now(UTC) - self.retention
        async with self.db.engine.begin() as conn:
            if self.db.is_postgres:
                got = await conn.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": self._prune_lock_key}
                )
                if not got:
                    return 0
            newest = select(func.max(outbox.c.id)).scalar_subquery()
            oldest = (
                select(outbox.c.id)
                .where(outbox.c.published_at < cutoff, outbox.c.id < newest)
                .order_by(outbox.c.id)
                .limit(batch_size)
                .subquery()
            )
            last = await conn.scalar(select(func.max(oldest.c.id)))
            if last is None:
                return 0
            old = (outbox.c.id <= last, outbox.c.published_at < cutoff)
            await conn.execute(
                insert(history).from_select(
                    ["outbox_id", "key", "payload", "created_at"],
                    select(outbox.c.id, outbox.c.key, outbox.c.payload, outbox.c.created_at).where(
                        *old
                    ),
                )
            )
            moved = await conn.execute(delete(outbox).where(*old))
        return int(moved.rowcount or 0)

    async def _prune_when_due(self) -> None:
        if self.prune_every_seconds <= 0:
            return
        if time.monotonic() - self._pruned_at < self.prune_every_seconds:
            return
        self._pruned_at = time.monotonic()
        try:
            await self.retain()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.warning("outbox or inbox retention failed; retrying later", exc_info=True)

    async def retain(self) -> None:
        """One retention pass: sent outbox rows past the retention period move to the
        event history, and the inbox forgets the events made before its own period (made,
        not handled: an event's id tells when it was made, and no index is kept for when it
        was handled)."""
        while await self.prune() > 0:
            await asyncio.sleep(0)  # let the hot path in between batches
        made_before = datetime.now(UTC) - self.inbox_retention
        while await self.db.prune_inbox(made_before) > 0:
            await asyncio.sleep(0)

    async def run(self) -> None:
        while True:
            await self._prune_when_due()
            # cleared before looking, so a commit that lands while a batch is being sent
            # wakes the next wait at once instead of after the poll interval
            self.db.events_written.clear()
            try:
                sent = await self.relay_once()
                self._outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged when it starts and when it ends
                await asyncio.sleep(self._outage.failed())
                continue
            if sent >= self.batch_size:
                continue
            await self._wait_for_rows()

    async def _wait_for_rows(self) -> None:
        """Until a commit in this process wakes the relay (then it gathers further commits
        for ``gather_seconds``, or until ``pace_seconds`` after the last round that sent
        something began if that is later), or a look finds unpublished rows: another
        instance's, which it left to the lock's holder, or a failed batch's.

        The first look comes ``poll_seconds`` after the relay's last batch, each further
        one twice as long after the one before, up to ``poll_max_seconds``: a quiet
        service's relay (and a busy one's whose commits wake it) no longer looks five times
        a second for nothing (a look is ~75 us of this process and ~50 of PostgreSQL,
        bench/relay_poll.py). Rows this process wrote while another instance held the lock
        are looked for ``poll_seconds`` later as before (the batch that found the lock taken
        starts the wait afresh); only rows nobody here knows of (a crashed instance's) may
        wait up to ``poll_max_seconds``."""
        poll = self.poll_seconds
        while not await wait_set(self.db.events_written, poll):
            await self._prune_when_due()
            if await self._any_unpublished():
                return
            poll = min(2 * poll, self.poll_max_seconds)
        wait = max(self.gather_seconds, self._sent_at + self.pace_seconds - self._now())
        if wait > 0:
            await self._gather(wait)

    _now = staticmethod(time.monotonic)  # (tests replace these two)
    _gather = staticmethod(asyncio.sleep)

    async def _any_unpublished(self) -> bool:
        """Whether the outbox holds a row not sent yet; True when it cannot tell (the batch
        that follows reports the outage)."""
        try:
            if self.db.is_postgres:
                async with self.db.driver_connection() as (_, raw):
                    return bool(await raw.fetchval(_UNPUBLISHED_SQL))
            outbox = self.db.outbox
            async with self.db.engine.connect() as conn:
                return bool(
                    await conn.scalar(select(exists().where(outbox.c.published_at.is_(None))))
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the batch logs it
            return True

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"relay:{self.db.service}")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let a batch in flight finish (so it is not sent again after a restart), then
        stop: the lock is held while the loop is cancelled, so no new batch starts. A batch
        stuck longer than ``grace_seconds`` (a consumer retrying a failing handler in
        embedded mode) is cancelled anyway; its rows stay unpublished and go out later."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(grace_seconds):
                await self._idle.acquire()
            acquired = True
        except TimeoutError:
            acquired = False
        try:
            task.cancel()
            # a cancelled batch rolls back its transaction; never let that hold up a stop
            done, _ = await asyncio.wait({task}, timeout=grace_seconds)
            if not done:
                log.warning(
                    "outbox relay did not stop in time; leaving it",
                    extra={"service": self.db.service},
                )
        finally:
            if acquired:
                self._idle.release()

    async def drain(self) -> None:
        """Publish everything pending now (used at shutdown and in tests)."""
        while await self.relay_once():
            pass
