"""CPU evaluation's consumer spends tallying registrations into their hotspot tracks
(``monitoring.tally_hotspots``, the set-based path), on bench/e2e.py's traffic as it stands
in an e2e run's measured window: ~1,200 matter-and-district pairs, each ticket's pair holding
a few earlier tickets of the window and no hotspot yet (each ticket only counts), 128
registrations a batch, each batch in its own transaction on the real PostgreSQL.

    python bench/hotspot_tally.py [tickets a round] [rounds] [profile]

Prints JSON: microseconds of this process's CPU a ticket (the best round and the median;
the first round warms up and fills the tracks). With ``profile``, cProfile's largest
entries instead. Compare two trees with BENCH_ROOT, alternating (A B B A)."""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import json
import os
import pstats
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop
from pydantic import AwareDatetime, TypeAdapter

# BENCH_ROOT: the tree whose handlers run (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.e2e import ticket_bodies  # noqa: E402
from bench.knowledge_search import scratch_database  # noqa: E402
from services.evaluation.app import SPEC  # noqa: E402
from services.evaluation.handlers import monitoring  # noqa: E402
from shared.bus import LogBus  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.db import UnitOfWork, begin_on_driver  # noqa: E402
from shared.service import create_service_app  # noqa: E402
from shared.settings import Settings  # noqa: E402

# the registrations' times as a consumer reads them from an event (pydantic's zone)
T0 = TypeAdapter(AwareDatetime).validate_python("2026-12-07T09:00:00Z")
BATCH = 128


async def run(tickets: int, rounds: int, profile: bool) -> dict[str, Any]:
    bodies = ticket_bodies(tickets * (rounds + 1))
    regs = [
        monitoring.Registration(
            f"T{n:08d}", b["matter_code"], b["district"], T0 + timedelta(milliseconds=n)
        )
        for n, b in enumerate(bodies)
    ]
    spec = dataclasses.replace(SPEC, background=[])
    spent: list[float] = []
    profiler = cProfile.Profile()
    async with scratch_database() as url:
        app = create_service_app(
            spec, Settings(db_url=url, env="test"), bus=LogBus(), clock=ManualClock(T0)
        )
        async with app.router.lifespan_context(app):
            ctx = app.state.ctx
            for r in range(rounds + 1):
                part = regs[r * tickets : (r + 1) * tickets]
                if profile and r:
                    profiler.enable()
                cpu = 0.0
                for i in range(0, len(part), BATCH):
                    async with ctx.db.engine.begin() as conn:
                        await begin_on_driver(conn)
                        start = time.process_time()
                        await monitoring.tally_hotspots(ctx, UnitOfWork(conn), part[i : i + BATCH])
                        cpu += time.process_time() - start
                if profile and r:
                    profiler.disable()
                spent.append(cpu / len(part) * 1e6)
    if profile:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(40)
    times = spent[1:]
    return {
        "tickets": tickets,
        "us_per_ticket": {
            "best": round(min(times), 2),
            "median": round(statistics.median(times), 2),
            "rounds": [round(t, 2) for t in times],
        },
    }


def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 1280
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    profile = len(sys.argv) > 3
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(tickets, rounds, profile))
    print(json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
