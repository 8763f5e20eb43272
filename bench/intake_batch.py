"""CPU intake spends on one registration batch's statement (issue 12), before and in the
driver: the tickets' stored columns (``ticket_values``: sealing the requester), the
statement's arrays (``_BatchRows.add``, ``arguments``) and asyncpg's encoding of them, timed
by running a statement that takes the same parameters, cast alike, and does nothing with
them (the server's time is not counted: this process's CPU only).

    python bench/intake_batch.py [batch size] [batches per round] [rounds]

Needs PostgreSQL (``HOTLINE_PG_URL``, else scripts/postgres.sh's). Prints JSON:
microseconds of this process's CPU per ticket for each step and in total (the best round
and the median). Compare two trees by running each from its own checkout, alternating."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from e2e import ticket_bodies  # bench/ holds this script: its neighbour
from knowledge_search import pg_url

from services.intake.domain import DEFAULT_POLICY, IntakePolicy, search_terms
from services.intake.handlers import registration as reg
from services.intake.schemas import TicketCreate
from shared.auth import Caller, Role
from shared.sealing import KeyRing

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
OPERATOR = Caller(sub="op-1", role=Role.OPERATOR)


def items(n: int, start: int) -> list[Any]:
    policy = IntakePolicy.from_settings(T0, DEFAULT_POLICY)
    matter = reg._Matter(active=True, anonymous_allowed=False, default_urgency="livelihood")
    found = []
    for i, body in enumerate(ticket_bodies(n, seed=start)):
        data = TicketCreate.model_validate(body)
        found.append(
            reg._Registering(
                OPERATOR,
                data,
                data.channel or "phone",
                policy,
                matter,
                [],
                search_terms(data.content),
                # each request its own time, as in the service (a column of times
                # alike would go as one value)
                T0 + timedelta(microseconds=start * 1_000_003 + i * 1_237),
                None,
                None,
                None,
                f"nonce-{start}-{i}",
            )
        )
    return found


def echo_statement(statement: str) -> str:
    """A statement taking ``statement``'s parameters with their casts, doing nothing."""
    casts: dict[int, str] = {}
    for number, cast in re.findall(r"\$(\d+)::([a-z0-9_ ]+(?:\[\])?)", statement):
        casts.setdefault(int(number), cast)
    count = max(int(n) for n in re.findall(r"\$(\d+)", statement))
    params = ", ".join(f"${i}::{casts.get(i, 'bigint')}" for i in range(1, count + 1))
    return f"SELECT 1 FROM (SELECT {params}) AS p WHERE false"


async def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    ring = KeyRing.development()
    statement = echo_statement(reg._WRITE_BATCH[True, False])  # (no keys)
    conn = await asyncpg.connect(pg_url().replace("+asyncpg", ""))
    work = [items(size, b) for b in range(20)]
    gc.collect()
    gc.freeze()  # the set-up's heap, as the services freeze theirs at start
    steps: dict[str, list[float]] = {"values": [], "rows": [], "driver": [], "total": []}
    try:
        for _ in range(rounds):
            spent = dict.fromkeys(steps, 0.0)
            for b in range(batches):
                batch = work[b % len(work)]
                t0 = time.process_time()
                values = [
                    reg.ticket_values(ring, i.caller, i.data, i.channel, i.matter, [], i.now)
                    for i in batch
                ]
                t1 = time.process_time()
                rows = reg._BatchRows()
                for n, item in enumerate(batch):
                    rows.add(ring, item, values[n], 1000 + n, [], looks_up=True)
                args = rows.arguments(True)
                t2 = time.process_time()
                await conn.fetch(statement, *args)
                t3 = time.process_time()
                spent["values"] += t1 - t0
                spent["rows"] += t2 - t1
                spent["driver"] += t3 - t2
            spent["total"] = sum(spent.values())  # this process's CPU a ticket, in all
            for step, seconds in spent.items():
                steps[step].append(seconds / (batches * size) * 1e6)
    finally:
        await conn.close()
    best: Callable[[list[float]], float] = min
    print(
        json.dumps(
            {
                "batch": size,
                "us_per_ticket": {
                    s: {"best": round(best(v), 2), "median": round(statistics.median(v), 2)}
                    for s, v in steps.items()
                },
                "parameters": statement.count("$"),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
