"""Replays refused across every instance of a service (issue 9, service identity).

Each process remembers the nonces it has seen (``shared.auth.NonceCache``); that stops a
replay sent to the same process. With several instances of a service behind one address a
captured request could be sent again to another instance within the signature's 60 s.
For state-changing methods (POST, PUT, PATCH, DELETE) the service therefore also records the
nonce in its own database, one row under a unique key: the first instance to write it runs
the request, every later one refuses it. Reads are not recorded (a replayed read changes
nothing and answers what the original answered), so the hot read path adds no write.

On by default on PostgreSQL (where several instances share a schema); in embedded mode
(SQLite, one process per service) the per-process cache is the whole guarantee
(``HOTLINE_SHARED_NONCES`` overrides either way)."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import text

from shared.auth import MAX_SKEW_SECONDS
from shared.db import Database

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRUNE_SECONDS = 60.0
log = logging.getLogger("hotline.replays")

_CREATE = (
    "CREATE TABLE IF NOT EXISTS request_nonces ("
    " nonce VARCHAR(64) PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS ix_request_nonces_seen ON request_nonces (seen_at)"
_INSERT = text(
    "INSERT INTO request_nonces (nonce, seen_at) VALUES (:nonce, :now) ON CONFLICT DO NOTHING"
)
_PRUNE = text("DELETE FROM request_nonces WHERE seen_at < :before")


class SharedNonces:
    """The nonces of state-changing requests, in the service's database."""

    def __init__(self, db: Database, window: float = MAX_SKEW_SECONDS) -> None:
        self.db = db
        self.window = window

    async def create(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(text(_CREATE))
            await conn.execute(text(_INDEX))

    async def first_use(self, nonce: str, now: float | None = None) -> bool:
        """True for the first instance to record ``nonce``; False for a replay."""
        async with self.db.engine.begin() as conn:
            stored = await conn.execute(
                _INSERT, {"nonce": nonce[:64], "now": time.time() if now is None else now}
            )
        return stored.rowcount == 1

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
