"""CPU a consumer spends on the set-based statements of one batch (shared/db.py): the
inbox claim with the parked heads (``claim_unparked``), ``insert_new`` of new rows (SLA's
clocks: ten timestamps a row), ``upsert_many`` and ``update_many`` of the batch's tickets,
and ``rows_in`` reading them back, each for a batch of ``rows`` events, on the real
PostgreSQL in a transaction that is rolled back; and an empty transaction, begun and
committed as a consumer's batch is (``transaction``: ``Database.kept_transaction``) and as
it was through ``engine.begin()`` (``transaction_engine``, not in ``statements``).

    python bench/set_statements.py [rows] [batches] [rounds]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's); works in a database of
its own, dropped at the end. Prints JSON: microseconds of this process's CPU per batch
for each statement (the best round and the median; the server's time is not counted),
and for building the arguments alone (``arguments``: what ``_execute_built`` hands the
driver, no database). Compare two trees by running each from its own checkout,
alternating, minutes apart (the machine's speed drifts)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from knowledge_search import scratch_service_db  # bench/ holds this script: its neighbour
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sla.models import clocks, tickets
from shared.db import (
    Database,
    _compiled,
    _insert_from_arrays,
    begin_on_driver,
    given_values,
    insert_new,
    rows_in,
    update_many,
    upsert_many,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def ticket_row(n: int, batch: int) -> dict[str, Any]:
    return {
        "ticket_id": f"T{batch:06d}{n:04d}",
        "urgency": "general",
        "type": "complaint",
        "district": f"D{n % 12}",
        "round": 1,
        "registered_at": T0 + timedelta(seconds=n),
    }


def clock_row(n: int, batch: int) -> dict[str, Any]:
    started = T0 + timedelta(seconds=n)
    return {
        "ticket_id": f"T{batch:06d}{n:04d}",
        "kind": "dispatch",
        "round": 1,
        "dispatch_no": 1,
        "unit_id": None,
        "district": f"D{n % 12}",
        "urgency": "general",
        "period": "24h",
        "started_at": started,
        "deadline": started + timedelta(hours=24),
        "provisional": False,
        "stopped_at": None,
        "cancelled_at": None,
        "overdue_at": started + timedelta(hours=24),
        "warn_at": started + timedelta(hours=20),
        "warned_at": None,
        "escalation_level": 0,
        "escalate_at": None,
        "next_due_at": started + timedelta(hours=20),
        "extensions": 0,
    }


async def run(rows: int, batches: int, rounds: int) -> dict[str, Any]:
    async with scratch_service_db(tickets, clocks) as db:
        return await measure(db, rows, batches, rounds)


async def measure(db: Database, rows: int, batches: int, rounds: int) -> dict[str, Any]:
    spent: dict[str, list[float]] = {}

    async def timed(name: str, step: Awaitable[Any]) -> Any:
        start = time.process_time()
        result = await step
        spent.setdefault(name, []).append(time.process_time() - start)
        return result

    per_round: list[dict[str, float]] = []
    for _ in range(rounds):
        spent.clear()
        for b in range(batches):
            ids = [str(uuid.uuid4()) for _ in range(rows)]
            ts = [ticket_row(n, b) for n in range(rows)]
            cs = [clock_row(n, b) for n in range(rows)]
            async with db.engine.begin() as conn:
                await begin_on_driver(conn)
                keys = [t["ticket_id"] for t in ts]
                await timed("claim_unparked", db.claim_unparked(conn, "bench", ids, keys))
                await timed("insert_new", insert_new(conn, clocks, cs, clocks.c.id))
                await timed("upsert_many", upsert_many(conn, tickets, ["ticket_id"], ts, ["round"]))
                changed = [{"ticket_id": t["ticket_id"], "round": 2} for t in ts]
                await timed("update_many", update_many(conn, tickets, ["ticket_id"], changed))
                read = rows_in(conn, (tickets,), tickets.c.ticket_id, keys)
                await timed("rows_in", read)
                await conn.rollback()
            await timed("transaction", _empty(db.kept_transaction()))
            await timed("transaction_engine", _empty(_engine_begin(db)))
            build = _arguments_of(cs)
            start = time.process_time()
            for _ in range(10):
                build()
            spent.setdefault("arguments", []).append((time.process_time() - start) / 10)
        per_round.append({k: sum(v) / len(v) * 1e6 for k, v in spent.items()})
    result: dict[str, Any] = {"rows": rows, "batches": batches}
    for name in per_round[0]:
        times = [r[name] for r in per_round]
        result[name] = {
            "best_us": round(min(times), 1),
            "median_us": round(statistics.median(times), 1),
        }
    statements = [n for n in per_round[0] if n not in ("arguments", "transaction_engine")]
    totals = [sum(r[n] for n in statements) for r in per_round]
    result["statements"] = {
        "best_us": round(min(totals), 1),
        "median_us": round(statistics.median(totals), 1),
    }
    return result


DIALECT = postgresql.asyncpg.dialect()


async def _empty(transaction: AbstractAsyncContextManager[Any]) -> None:
    async with transaction:
        pass


@asynccontextmanager
async def _engine_begin(db: Database) -> AsyncIterator[AsyncConnection]:
    """A transaction as consumers began one before ``kept_transaction``."""
    async with db.engine.begin() as conn:
        await begin_on_driver(conn)
        yield conn


def _arguments_of(rows: list[dict[str, Any]]) -> Callable[[], Any]:
    """The positional arguments ``insert_new`` hands the driver for ``rows`` of clocks."""
    stmt = _insert_from_arrays(clocks, tuple(rows[0]), ("id",))
    _, arguments = _compiled(stmt, DIALECT)
    params = given_values({c: [r[c] for r in rows] for c in rows[0]})
    return lambda: arguments(params)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(json.dumps(asyncio.run(run(rows, batches, rounds)), indent=1))


if __name__ == "__main__":
    main()
