"""PostgreSQL's work on SLA's clocks (issue 12): SLA's consumer handles the bench's traffic
(each ticket registered: its dispatch clock started; then dispatched: that clock stopped,
the acceptance clock started) in two databases of its own, A with ``sla.clocks`` pages
filled full, B with them filled to ``fillfactor`` percent, the rounds alternating A B, B A.
Each database's statements are read from pg_stat_statements (reset in its scope before each
round): PostgreSQL's time and WAL records a ticket of the registered and the dispatched
statement.

    python bench/sla_clocks.py [fillfactor] [tickets] [batch] [rounds]

Needs PostgreSQL with pg_stat_statements (``HOTLINE_PG_URL``, else scripts/postgres.sh's).
Prints JSON; with ``BENCH_DEBUG`` set, each round's three dearest statements to stderr."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.consumers import (  # noqa: E402
    SPECS,
    T0,
    chunks,
    handled,
    outbox_of,
    registrations,
)
from bench.knowledge_search import pg_url, scratch_database  # noqa: E402
from shared.bus import LogBus  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.service import create_service_app  # noqa: E402
from shared.settings import Settings  # noqa: E402

# what tells the two statements in pg_stat_statements
STATEMENTS = {"registered": "WITH ticket AS (INSERT", "dispatched": "WITH ticket AS (UPDATE"}


async def service(stack: AsyncExitStack, name: str, url: str) -> Any:
    app = create_service_app(
        SPECS[name], Settings(db_url=url, env="test"), bus=LogBus(), clock=ManualClock(T0)
    )
    await stack.enter_async_context(app.router.lifespan_context(app))
    return app.state.ctx


async def stats(admin: asyncpg.Connection, database: str) -> dict[str, tuple[float, float]]:
    rows = await admin.fetch(
        "SELECT query, total_exec_time, wal_records, shared_blks_hit, calls"
        " FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
        database,
    )
    found = {name: (0.0, 0.0) for name in STATEMENTS}
    if os.environ.get("BENCH_DEBUG"):  # the dearest statements, to stderr
        for query, ms, wal, hit, calls in sorted(rows, key=lambda r: -r[1])[:3]:
            print(round(ms, 1), wal, hit, calls, " ".join(query.split())[:60], file=sys.stderr)
    for query, ms, wal, *_ in rows:
        query = " ".join(query.split())
        for name, start in STATEMENTS.items():
            if query.startswith(start):
                found[name] = (found[name][0] + ms, found[name][1] + wal)
    return found


async def run(fillfactor: int, tickets: int, size: int, rounds: int) -> dict[str, Any]:
    admin = await asyncpg.connect(pg_url().replace("postgresql+asyncpg", "postgresql"))
    results: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    async with AsyncExitStack() as stack:
        source = await stack.enter_async_context(scratch_database())
        urls = {v: await stack.enter_async_context(scratch_database()) for v in "AB"}
        dispatch = await service(stack, "dispatch", source)
        sla = {v: await service(stack, "sla", urls[v]) for v in "AB"}
        for variant, setting in (
            ("A", "RESET (fillfactor)"),
            ("B", f"SET (fillfactor = {fillfactor})"),
        ):
            async with sla[variant].db.driver_connection() as (_, raw):
                await raw.execute(f"ALTER TABLE clocks {setting}")
        for r in range(rounds + 1):
            regs = registrations(tickets, r * tickets)
            await handled(dispatch, chunks(regs, size))
            dispatched = [
                d
                for d in await outbox_of(dispatch, "ticket.dispatched")
                if d.ticket_id >= f"T{r * tickets:08d}"
            ]
            for variant in "AB" if r % 2 == 0 else "BA":
                database = urls[variant].rpartition("/")[2]
                await admin.execute(
                    "SELECT pg_stat_statements_reset(0,"
                    " (SELECT oid FROM pg_database WHERE datname = $1))",
                    database,
                )
                await handled(sla[variant], chunks(regs, size))
                await handled(sla[variant], chunks(dispatched, size))
                if r == 0:  # warm-up; then the tables' statistics, as autovacuum keeps them
                    async with sla[variant].db.driver_connection() as (_, raw):
                        await raw.execute("ANALYZE")
                    continue
                for name, (ms, wal) in (await stats(admin, database)).items():
                    results[variant].setdefault(f"{name}_us", []).append(ms * 1000 / tickets)
                    results[variant].setdefault(f"{name}_wal", []).append(wal / tickets)
    await admin.close()
    out: dict[str, Any] = {"fillfactor_b": fillfactor, "tickets": tickets, "batch": size}
    for variant, series in results.items():
        out[variant] = {
            k: {"median": round(statistics.median(v), 2), "all": [round(x, 2) for x in v]}
            for k, v in series.items()
        }
    return out


def main() -> None:
    fillfactor = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    tickets = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(fillfactor, tickets, size, rounds))
    print(json.dumps(result, indent=1), flush=True)
    os._exit(0)  # a service leaves a thread behind that would hold the exit up


if __name__ == "__main__":
    main()
