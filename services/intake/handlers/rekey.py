"""Re-seal requester data under the key ring's current key (after a rotation), and the
phone's blind index with the current index key: ``python -m services.intake rekey``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from services.intake.models import tickets
from services.intake.sealed import FIELDS, SEALED_COLUMNS, open_requester, seal_requester
from shared.db import Database
from shared.sealing import KeyRing

BATCH = 500


async def rekey(
    db: Database, ring: KeyRing, *, everything: bool = False, batch: int = BATCH
) -> int:
    """Rows whose values are sealed under an older key, opened and sealed again, one batch
    per transaction (safe to stop and run again; registrations go on meanwhile). With
    ``everything`` every row is re-sealed and re-indexed (a new blind index key). Returns
    how many rows changed."""
    stale = or_(*(~tickets.c[c].startswith(ring.current + ":") for c in SEALED_COLUMNS))
    changed, last = 0, 0
    while True:
        async with db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(tickets.c.id, *(tickets.c[c] for c in SEALED_COLUMNS))
                    .where(tickets.c.id > last, *(() if everything else (stale,)))
                    .order_by(tickets.c.id)
                    .limit(batch)
                )
            ).all()
            if not rows:
                return changed
            resealed = [
                {"pk": r.id, **_bound(seal_requester(ring, *_plain(ring, r._mapping)))}
                for r in rows
            ]
            await conn.execute(
                update(tickets)
                .where(tickets.c.id == bindparam("pk"))
                .values(
                    {c: bindparam(f"new_{c}") for c in (*SEALED_COLUMNS, "requester_phone_index")}
                ),
                resealed,
            )
        changed += len(rows)
        last = rows[-1].id


def _plain(ring: KeyRing, row: Mapping[Any, Any]) -> tuple[str | None, ...]:
    opened = open_requester(ring, row)
    return tuple(opened[f] for f in FIELDS)


def _bound(values: dict[str, str | None]) -> dict[str, str | None]:
    return {f"new_{k}": v for k, v in values.items()}
