"""Soak of the distributed mode (`make soak`, prints JSON; not a test, not in CI).

N tickets (100,000) through the gateway at a steady offered rate, with a short outbox and
inbox retention, while every table of every service schema is sampled: rows and bytes (with
indexes and TOAST). The plumbing tables — outboxes, inboxes, dead letters, Idempotency-Keys —
must stay flat (bounded by rate x retention), whatever the number of tickets; the tables that
hold the tickets themselves (and the event history the timeline reads) grow with them, and
their growth per ticket is printed too.

PostgreSQL and Kafka come from scripts/ (the running ones are reused, never stopped); a fresh
database and topic prefix; the gateway and the five services as processes (bench/e2e.py).

Knobs: SOAK_TICKETS (100000), SOAK_RATE tickets/s offered (40), SOAK_CONCURRENCY (8),
SOAK_MAX_BACKLOG (1500: clients wait while that many tickets are registered but not yet
through the slower of SLA and evaluation, so a pipeline slower than the rate is not
buried), SOAK_RETENTION_SECONDS (20, the outbox's and the inbox's), SOAK_SAMPLE_SECONDS
(30), SOAK_JWT_TTL_MINUTES (30: the access token's lifetime; clients sign in again when it
runs out), SOAK_MINUTES (0: no limit; stop registering after that long and report what
fitted; SIGTERM does the same at once). A progress
line per sample goes to stderr."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.e2e import complete, counts, ticket_bodies  # noqa: E402
from tests.integration.conftest import (  # noqa: E402
    PROCESSES,
    System,
    _create_database,
    _drop_system,
    _script_output,
    free_port,
)

TICKETS = int(os.environ.get("SOAK_TICKETS", "100000"))
RATE = float(os.environ.get("SOAK_RATE", "40"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "8"))
MAX_BACKLOG = int(os.environ.get("SOAK_MAX_BACKLOG", "1500"))
RETENTION = float(os.environ.get("SOAK_RETENTION_SECONDS", "20"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "30"))
MINUTES = float(os.environ.get("SOAK_MINUTES", "0"))
SCHEMAS = ("gateway", "intake", "dispatch", "sla", "knowledge", "evaluation", "channels")
# tables that must not grow with the number of tickets (the spine's plumbing)
PLUMBING = ("outbox", "inbox", "dead_letters", "idempotency_keys")
THROUGH = {
    "sla": "SELECT count(*) FROM sla.clocks WHERE kind = 'acceptance'",
    "evaluation": "SELECT count(*) FROM evaluation.handlings",
}
ENV = {
    "HOTLINE_LOG_LEVEL": "WARNING",
    "HOTLINE_DB_POOL_SIZE": "10",
    "HOTLINE_OUTBOX_RETENTION_SECONDS": str(RETENTION),
    "HOTLINE_OUTBOX_PRUNE_SECONDS": str(max(1.0, RETENTION / 2)),
    "HOTLINE_INBOX_RETENTION_SECONDS": str(RETENTION),
    # the operator's token expires during a long soak; the clients sign in again on a 401
    "HOTLINE_JWT_TTL_MINUTES": os.environ.get("SOAK_JWT_TTL_MINUTES", "30"),
}


async def sizes(pg: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Rows and bytes of every table of the service schemas (exact counts: a soak's tables
    are small enough, and estimates lag behind autovacuum)."""
    tables = await pg.fetch(
        "SELECT schemaname, relname FROM pg_stat_user_tables WHERE schemaname = ANY($1)"
        " AND relname <> 'alembic_version' ORDER BY 1, 2",
        list(SCHEMAS),
    )
    out: dict[str, dict[str, int]] = {}
    for t in tables:
        name = f'"{t["schemaname"]}"."{t["relname"]}"'
        out[f"{t['schemaname']}.{t['relname']}"] = {
            "rows": int(await pg.fetchval(f"SELECT count(*) FROM {name}")),  # noqa: S608
            "bytes": int(await pg.fetchval("SELECT pg_total_relation_size($1::regclass)", name)),
        }
    return out


def verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per table: rows and bytes at the first sample past the warm-up, the middle, the end,
    and the maximum; a plumbing table is flat when its rows at the end are no more than
    at the middle plus what one retention period at the sampled rate can hold."""
    if len(samples) < 3:
        return {}
    first, middle, last = samples[1], samples[len(samples) // 2], samples[-1]
    tickets = max(1, last["tickets"] - middle["tickets"])
    seconds = max(1.0, last["t"] - middle["t"])
    report: dict[str, Any] = {}
    for table in last["tables"]:
        rows = [s["tables"].get(table, {}).get("rows", 0) for s in samples]
        row = {
            "rows": [
                first["tables"].get(table, {}).get("rows", 0),
                middle["tables"].get(table, {}).get("rows", 0),
                last["tables"][table]["rows"],
            ],
            "max_rows": max(rows),
            "bytes": [
                first["tables"].get(table, {}).get("bytes", 0),
                middle["tables"].get(table, {}).get("bytes", 0),
                last["tables"][table]["bytes"],
            ],
            "rows_per_ticket_second_half": round(
                (last["tables"][table]["rows"] - middle["tables"].get(table, {}).get("rows", 0))
                / tickets,
                3,
            ),
        }
        if table.rsplit(".", 1)[1] in PLUMBING:
            # events per ticket per table are few (< 10): one retention period's worth
            allowance = 10 * (tickets / seconds) * (RETENTION + 2 * SAMPLE_SECONDS)
            row["flat"] = row["rows"][2] <= row["rows"][1] + allowance
        if row["max_rows"] or row["rows_per_ticket_second_half"]:
            report[table] = row
    return report


async def main() -> None:  # noqa: PLR0915 - one linear script
    pg_url = os.environ.get("HOTLINE_PG_URL") or _script_output("postgres.sh")["HOTLINE_PG_URL"]
    kafka = os.environ.get("KAFKA_BOOTSTRAP") or _script_output("kafka.sh")["KAFKA_BOOTSTRAP"]
    system = System({"pg": pg_url, "kafka": kafka}, Path(tempfile.mkdtemp(prefix="soak-")))
    system.ports = {p: free_port() for p in PROCESSES}
    await _create_database(system)
    dsn = system.db_url.replace("postgresql+asyncpg", "postgresql")
    pg: asyncpg.Connection | None = None
    began = time.monotonic()
    try:
        for process in PROCESSES:
            system.start(process, extra_env=ENV)
        for process in PROCESSES:
            await system.wait_ready(process, timeout=180)
        await system.login("operator")
        pg = await asyncpg.connect(dsn, server_settings={"application_name": "soak"})
        bodies = ticket_bodies(TICKETS)
        accepted = 0
        # tickets through the slowest schema: the SLA service's acceptance clock and
        # evaluation's copy of it are the ends of a ticket's two paths through the spine
        through = 0
        ends = {"sla": 0, "evaluation": 0}
        statuses: dict[int, int] = {}
        stop_at = time.monotonic() + MINUTES * 60 if MINUTES else float("inf")
        stopping = asyncio.Event()  # SIGTERM or SIGINT: stop registering, report what fitted
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        interval = CONCURRENCY / RATE
        todo = iter(bodies)

        signing_in = asyncio.Lock()

        async def sign_in_again(http: httpx.AsyncClient, refused: str) -> None:
            """The operator's access token lasts HOTLINE_JWT_TTL_MINUTES (30): a soak outlives
            it, so a 401 signs in again (once for every client that was refused with it)."""
            async with signing_in:
                if http.headers["authorization"] == refused:
                    await system.login("operator")
                    http.headers["authorization"] = f"Bearer {system.tokens['operator']}"

        async def client(http: httpx.AsyncClient) -> None:
            nonlocal accepted
            for body in todo:
                if time.monotonic() > stop_at or stopping.is_set():
                    return
                while accepted - through > MAX_BACKLOG:
                    await asyncio.sleep(0.2)
                sent = time.monotonic()
                for _attempt in range(3):  # the same ticket again after signing in again
                    token = http.headers["authorization"]
                    try:
                        r = await http.post("/api/v1/intake/tickets", json=body)
                    except httpx.HTTPError:
                        statuses[0] = statuses.get(0, 0) + 1
                        break
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code != 401:
                        accepted += r.status_code == 201
                        break
                    await sign_in_again(http, token)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - sent)))

        samples: list[dict[str, Any]] = []
        start = time.monotonic()

        async def sample() -> None:
            nonlocal through
            next_sample = time.monotonic()
            while True:
                for schema, query in THROUGH.items():
                    ends[schema] = int(await pg.fetchval(query))
                through = min(ends.values())
                if time.monotonic() >= next_sample:
                    next_sample += SAMPLE_SECONDS
                    tables = await sizes(pg)
                    t = round(time.monotonic() - start, 1)
                    samples.append(
                        {"t": t, "accepted": accepted, "tickets": through, "tables": tables}
                    )
                    plumbing = {
                        k: v["rows"] for k, v in tables.items() if k.rsplit(".", 1)[1] in PLUMBING
                    }
                    print(  # noqa: T201 - progress
                        json.dumps({"t": t, "accepted": accepted, **ends, **plumbing}),
                        file=sys.stderr,
                        flush=True,
                    )
                await asyncio.sleep(1.0)

        sampler = asyncio.create_task(sample())
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(
            base_url=system.gateway,
            headers={"authorization": f"Bearer {system.tokens['operator']}"},
            timeout=60,
            limits=limits,
        ) as http:
            await asyncio.gather(*(client(http) for _ in range(CONCURRENCY)))
        load_seconds = time.monotonic() - start
        # every schema holds every accepted ticket's effects (or ten minutes passed); on a
        # connection of its own, the sampler's is in use meanwhile
        drain_deadline = time.monotonic() + 600
        checker = await asyncpg.connect(dsn, server_settings={"application_name": "soak"})
        try:
            while time.monotonic() < drain_deadline:
                if through >= accepted and complete(await counts(checker, accepted)):
                    break
                await asyncio.sleep(5.0)
        finally:
            await checker.close()
        drain_seconds = time.monotonic() - start - load_seconds
        # one more retention period, so the last sample shows the outboxes emptied (each keeps
        # its newest row: shared/relay.py prune)
        await asyncio.sleep(RETENTION + SAMPLE_SECONDS)
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        samples.append(
            {
                "t": round(time.monotonic() - start, 1),
                "accepted": accepted,
                "tickets": through,
                "tables": await sizes(pg),
            }
        )
        picked = samples[:: max(1, len(samples) // 20)]
        if picked[-1] is not samples[-1]:
            picked.append(samples[-1])
        result = {
            "benchmark": "soak",
            "tickets_offered": TICKETS,
            "accepted": accepted,
            "through_the_spine": through,
            "through_by_schema": ends,
            "drain_seconds_after_load": round(drain_seconds, 1),
            "http_status": statuses,
            "rate_offered_per_second": RATE,
            "load_seconds": round(load_seconds, 1),
            "tickets_per_second": round(accepted / max(load_seconds, 1e-9), 1),
            "outbox_retention_seconds": RETENTION,
            "load_average": os.getloadavg(),
            "tables": verdict(samples),
            "plumbing_rows_sampled": [
                {
                    "t": s["t"],
                    "tickets": s["tickets"],
                    **{
                        k: v["rows"]
                        for k, v in s["tables"].items()
                        if k.rsplit(".", 1)[1] in PLUMBING and v["rows"]
                    },
                }
                for s in picked
            ],
            "counts": await counts(pg, accepted),
            "seconds_total": round(time.monotonic() - began, 1),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))  # noqa: T201 - the figures
    finally:
        if pg is not None:
            await pg.close()
        system.stop_all()
        if not os.environ.get("SOAK_KEEP_DB"):
            await _drop_system(system)


if __name__ == "__main__":
    asyncio.run(main())
