"""The cost of one idle look of the outbox relay (``OutboxRelay._any_unpublished``, what
its idle poll runs every ``relay_poll_seconds`` in every service process while nothing wakes
it): this process's CPU and the database backend's, a look, in a database of its own whose
outbox holds only sent rows (as a quiet service's does). Prints JSON.

    python bench/relay_poll.py [looks] [rounds]
    python bench/relay_poll.py idle [seconds] [rounds] [poll seconds]

``idle``: a relay left to itself (``start``) for ``seconds`` with nothing to send, in rounds
alternating A B B A: A looks every ``poll seconds`` (0.2, the integration tests' and e2e's
setting; ``poll_max_seconds`` equal to it), B backs off as the relay does by default. Prints
each one's looks, this process's CPU and the backend's, a second.

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import asyncpg
import uvloop
from knowledge_search import scratch_database  # bench/ holds this script
from relay_marking import DDL, PAYLOAD, SCHEMA, WRITE, Sink, cpu_ns

from shared.db import Database
from shared.relay import OutboxRelay


async def backends(conn: asyncpg.Connection, database: str, but: int) -> list[int]:
    """The client backends connected to ``database``, but ``but`` (the bench's own)."""
    found = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2"
        " AND backend_type = 'client backend'",
        database,
        but,
    )
    return [r[0] for r in found]


async def measure(url: str, looks: int, rounds: int) -> dict[str, Any]:
    plain = url.replace("postgresql+asyncpg", "postgresql")
    name = plain.rpartition("/")[2]
    writer = await asyncpg.connect(plain, server_settings={"search_path": SCHEMA})
    db = Database(SCHEMA, url, pool_size=2)
    try:
        for statement in DDL:
            await writer.execute(statement)
        await writer.execute(WRITE, 0, PAYLOAD, 2000)
        await writer.execute("UPDATE outbox SET published_at = now()")
        await writer.execute("ANALYZE outbox")
        relay = OutboxRelay(db, Sink())  # type: ignore[arg-type]
        assert not await relay._any_unpublished()  # its connection opened, statement prepared
        mine = await writer.fetchval("SELECT pg_backend_pid()")
        pids = await backends(writer, name, mine)
        client, backend = [], []
        for _ in range(rounds):
            c0, b0 = time.process_time(), cpu_ns(pids)
            for _ in range(looks):
                await relay._any_unpublished()
            client.append((time.process_time() - c0) / looks * 1e6)
            backend.append((cpu_ns(pids) - b0) / looks / 1000)
        return {
            "looks": looks,
            "rounds": rounds,
            "client_us_per_look": round(statistics.median(client), 1),
            "backend_us_per_look": round(statistics.median(backend), 1),
        }
    finally:
        await db.dispose()
        await writer.close()


async def idle(url: str, seconds: float, rounds: int, poll: float) -> dict[str, Any]:
    plain = url.replace("postgresql+asyncpg", "postgresql")
    name = plain.rpartition("/")[2]
    writer = await asyncpg.connect(plain, server_settings={"search_path": SCHEMA})
    found: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    try:
        for statement in DDL:
            await writer.execute(statement)
        mine = await writer.fetchval("SELECT pg_backend_pid()")
        for label in ("A", "B", "B", "A") * rounds:
            db = Database(SCHEMA, url, pool_size=2)
            relay = Looking(
                db, Sink(), poll_seconds=poll, poll_max_seconds=poll if label == "A" else None
            )
            assert not await relay._any_unpublished()  # its connection open
            pids = await backends(writer, name, mine)
            relay.looks = 0
            c0, b0 = time.process_time(), cpu_ns(pids)
            relay.start()
            await asyncio.sleep(seconds)
            await relay.stop()
            found[label].append(
                (
                    relay.looks / seconds,
                    (time.process_time() - c0) / seconds * 1e6,
                    (cpu_ns(pids) - b0) / seconds / 1000,
                )
            )
            await db.dispose()
    finally:
        await writer.close()
    return {
        "seconds": seconds,
        "poll_seconds": poll,
        **{
            label: {
                "looks_a_second": [round(r[0], 2) for r in runs],
                "client_us_a_second": [round(r[1]) for r in runs],
                "backend_us_a_second": [round(r[2]) for r in runs],
            }
            for label, runs in found.items()
        },
    }


class Looking(OutboxRelay):
    looks = 0

    async def _any_unpublished(self) -> bool:
        self.looks += 1
        return await super()._any_unpublished()


def _numbers(given: list[str], defaults: tuple[str, ...]) -> list[float]:
    """The command line's numbers, the defaults where it gives none."""
    return [float(a) for a in given + list(defaults[len(given) :])]


async def main() -> None:
    async with scratch_database() as url:
        if sys.argv[1:2] == ["idle"]:
            seconds, rounds, poll = _numbers(sys.argv[2:5], ("10", "2", "0.2"))
            found = await idle(url, seconds, int(rounds), poll)
        else:
            looks, rounds = _numbers(sys.argv[1:3], ("2000", "5"))
            found = await measure(url, int(looks), int(rounds))
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    uvloop.run(main())
