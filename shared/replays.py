"""Replays refused across every instance of a service (issue 9, service identity).

Each process remembers the nonces it has seen (``shared.auth.NonceCache``); that stops a
replay sent to the same process. With several instances of a service behind one address a
captured request could be sent again to another instance within the signature's 60 s.
For state-changing methods (POST, PUT, PATCH, DELETE) the service therefore also records the
nonce in its own database, one row under a unique key: the first instance to write it runs
the request, every later one refuses it. Reads are not recorded (a replayed read changes
nothing and answers what the original answered), so the hot read path adds no write.
Concurrent requests' nonces are recorded together (``shared/batching.py``): one
INSERT … ON CONFLICT DO NOTHING RETURNING for the batch tells each request whether it was
first, so a busy service pays one statement for many requests instead of a transaction each.

A route whose handler writes in a statement of its own may record the nonce in that write
instead (``records_nonce_in_its_write``; intake's registration): the nonce is inserted in the
same transaction as the request's effect and the effect is made only where the nonce was
new, so a replay is refused exactly where it would have been, without a round trip of its
own. Wherever such a handler writes nothing (it refuses the request, or answers from an
earlier write) it records the nonce through ``SharedNonces.record`` before it answers, so a
replay is told "replay" as before. A request refused before its handler runs (a role without
access, a body that does not validate) leaves no nonce: it changes nothing, and a replay is
refused the same way.

On by default on PostgreSQL (where several instances share a schema); in embedded mode
(SQLite, one process per service) the per-process cache is the whole guarantee
(``HOTLINE_SHARED_NONCES`` overrides either way)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import text

from shared.auth import MAX_SKEW_SECONDS
from shared.batching import GroupCommit
from shared.db import Database
from shared.errors import Unauthorized

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRUNE_SECONDS = 60.0
log = logging.getLogger("hotline.replays")

_CREATE = (
    "CREATE TABLE IF NOT EXISTS request_nonces ("
    " nonce VARCHAR(64) PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)"
)
# The nonces' index by time, made by the services until 2026-12-05, goes (issue 12): it
# took an entry (a WAL record, ~0.85 us of PostgreSQL's CPU) for every state-changing
# request, every registration, and only the pruner read it, once a minute. The pruner now
# reads the table through (at most ~3 minutes of requests: ~180,000 rows at 1,000 a
# second, ~30 ms a minute).
_DROP_INDEX = "DROP INDEX IF EXISTS ix_request_nonces_seen"
_INSERT = text(
    "INSERT INTO request_nonces (nonce, seen_at) VALUES (:nonce, :now) ON CONFLICT DO NOTHING"
)
NONCE_LENGTH = 64
NONCE_BATCH = 256
REPLAY = "this signed request was already used (replay)"
RECORDS_NONCE = "__hotline_records_nonce_in_its_write__"


def insert_nonces_sql(rows: str, where: str = "", *, all_new: bool = False) -> str:
    """PostgreSQL: the nonces of ``rows`` (a FROM item of columns ``n.nonce`` and
    ``n.seen_at``, e.g. arrays of parameters unnested) recorded, returning those that were
    new; a statement of its own or one part of a larger one (``WITH nonces AS (…)``), which
    may record only those meeting ``where`` (a condition on ``n.nonce``).

    ``all_new``: a plain insert, for nonces taken to be new (a replay is rare), which fails
    the statement on one recorded before: the caller runs it again without ``all_new``.
    ON CONFLICT's speculative insertion checks the key before each row, takes a lock of its
    own and writes a second WAL record to confirm the row (~1.5–2 us of PostgreSQL's CPU a
    row; issue 12)."""
    return (
        f"INSERT INTO request_nonces (nonce, seen_at) SELECT n.nonce, n.seen_at FROM {rows}"
        + (f" WHERE {where}" if where else "")
        + ("" if all_new else " ON CONFLICT DO NOTHING")
        + " RETURNING nonce"
    )


NONCE_KEY = "request_nonces_pkey"  # the constraint a plain insert of a nonce seen before fails


# many at once (PostgreSQL, on the driver's connection: prepared once per connection)
_INSERT_MANY = insert_nonces_sql("unnest($1::varchar[], $2::float8[]) AS n(nonce, seen_at)")
_PRUNE = text("DELETE FROM request_nonces WHERE seen_at < :before")


class SharedNonces:
    """The nonces of state-changing requests, in the service's database."""

    def __init__(self, db: Database, window: float = MAX_SKEW_SECONDS) -> None:
        self.db = db
        self.window = window
        self.batches: GroupCommit[tuple[str, float], bool] = GroupCommit(
            self._record, max_batch=NONCE_BATCH, max_in_flight=2, name="nonces"
        )

    async def create(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(text(_CREATE))
            await conn.execute(text(_DROP_INDEX))

    async def first_use(self, nonce: str, now: float | None = None) -> bool:
        """True for the first instance to record ``nonce``; False for a replay."""
        return await self.batches.submit(
            (nonce[:NONCE_LENGTH], time.time() if now is None else now)
        )

    async def record(self, nonce: str) -> None:
        """Records ``nonce``; raises ``Unauthorized`` for a replay."""
        if not await self.first_use(nonce):
            raise Unauthorized(REPLAY)

    async def _record(self, items: Sequence[tuple[str, float]]) -> list[bool]:
        """Each item's nonce recorded, in one statement on PostgreSQL: True where the
        nonce was new. A nonce given twice in one batch is first only the first time."""
        if self.db.is_postgres:
            async with self.db.driver_connection() as (_, raw):
                rows = await raw.fetch(
                    _INSERT_MANY, [n for n, _ in items], [seen for _, seen in items]
                )
            new = {r[0] for r in rows}
        else:
            new = set()
            async with self.db.engine.begin() as conn:
                for nonce, seen in items:
                    stored = await conn.execute(_INSERT, {"nonce": nonce, "now": seen})
                    if stored.rowcount == 1:
                        new.add(nonce)
        firsts = []
        for nonce, _ in items:
            firsts.append(nonce in new)
            new.discard(nonce)  # the same nonce again in this batch is a replay
        return firsts

    async def prune(self, now: float | None = None) -> None:
        """Forget nonces older than twice the window (their signatures are stale anyway)."""
        before = (time.time() if now is None else now) - 2 * self.window
        async with self.db.engine.begin() as conn:
            await conn.execute(_PRUNE, {"before": before})

    async def prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - tried again at the next interval
                log.warning("pruning request nonces failed; retrying later", exc_info=True)


F = TypeVar("F", bound=Callable[..., Any])


def records_nonce_in_its_write(endpoint: F) -> F:
    """Marks a route whose handler records the request's nonce itself, in the transaction of
    its own write (see the module's docstring): ``get_caller`` leaves it unrecorded."""
    setattr(endpoint, RECORDS_NONCE, True)
    return endpoint


def records_its_nonce(route: object) -> bool:
    """Whether the route's handler records the nonce in its own write."""
    return bool(getattr(getattr(route, "endpoint", None), RECORDS_NONCE, False))
