"""CPU the four event consumers spend a ticket on the bench's events (bench/e2e.py's
traffic: each ticket registered, dispatched by the catalog, its dispatch and acceptance
clocks set), each consumer's ``handle_batch`` run on batches as the bus hands them over
(one topic's events, ``BATCH`` tickets a batch, decoded from their bytes as the bus decodes
them for the consumer's group), on the real PostgreSQL, its own database.

    python bench/consumers.py [tickets] [batch] [rounds] [profile: a service's name]

Prints JSON: microseconds of this process's CPU per event for each consumer and event type
(the best round and the median; the server's time is not counted). With a service's name,
prints cProfile's 40 largest cumulative entries for that consumer instead. Compare two trees
by running each from its own checkout, alternating, minutes apart (the machine's speed
drifts)."""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import functools
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvloop

# BENCH_ROOT: the tree whose consumers run (this one's by default), to compare two trees
sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.e2e import ticket_bodies  # noqa: E402
from bench.knowledge_search import scratch_database  # noqa: E402
from services.channels.app import SPEC as CHANNELS  # noqa: E402
from services.dispatch.app import SPEC as DISPATCH  # noqa: E402
from services.evaluation.app import SPEC as EVALUATION  # noqa: E402
from services.sla.app import SPEC as SLA  # noqa: E402
from shared.bus import LogBus, decode  # noqa: E402
from shared.clock import ManualClock  # noqa: E402
from shared.consumer import Consumer  # noqa: E402
from shared.events import Envelope, TicketRegistered  # noqa: E402
from shared.http_server import freeze_startup_heap  # noqa: E402
from shared.service import ServiceContext, create_service_app  # noqa: E402
from shared.settings import Settings  # noqa: E402

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday
SPECS = {
    s.name: dataclasses.replace(s, background=[]) for s in (DISPATCH, SLA, EVALUATION, CHANNELS)
}


def registrations(tickets: int, start: int) -> list[Envelope]:
    """The bench's registrations, a millisecond apart, each with its own trace id."""
    out = []
    for i, body in enumerate(ticket_bodies(tickets, seed=start)):
        n = start + i
        at = T0 + timedelta(milliseconds=n)
        event = TicketRegistered(
            ticket_id=f"T{n:08d}",
            channel=body["channel"],
            type=body["type"],
            urgency="general",
            matter_code=body["matter_code"],
            district=body["district"],
            address=body["address"],
            content=body["content"],
            registered_at=at,
        )
        envelope = event.envelope(producer="intake", occurred_at=at)
        out.append(envelope.model_copy(update={"trace_id": uuid.uuid4().hex}))
    return out


def outbox_of(ctx: ServiceContext, kind: str) -> Any:
    """The events of ``kind`` the service wrote (its outbox), oldest first."""

    async def read() -> list[Envelope]:
        async with ctx.db.driver_connection() as (_, raw):
            rows = await raw.fetch(
                "SELECT payload FROM outbox WHERE payload::jsonb->>'type' = $1 ORDER BY id", kind
            )
        return [Envelope.from_json(r[0]) for r in rows]

    return read()


def models_of(spec: Any) -> dict[str, Any] | None:
    """The types the bus reads as their models for ``spec``'s group (none, in a tree from
    before the bus did)."""
    try:
        from shared.service import read_models
    except ImportError:
        return None
    return read_models(spec)


async def handled(ctx: ServiceContext, batches: list[list[Envelope]]) -> float:
    consumer: Consumer = ctx.extras["consumer"]
    spec = SPECS[ctx.name]
    types, models = frozenset(spec.handlers), models_of(spec)
    read = decode if models is None else functools.partial(decode, models=models)
    values = [[e.to_json() for e in batch] for batch in batches]
    start = time.process_time()
    for batch in values:
        await consumer.handle_batch(read(batch, types)[0])
    return time.process_time() - start


def chunks(events: list[Envelope], size: int) -> list[list[Envelope]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


async def one_round(
    url: str, tickets: int, size: int, start: int, profile: str | None
) -> dict[str, float]:
    """Each consumer's CPU per event of each type, for ``tickets`` new tickets."""
    regs = registrations(tickets, start)
    spent: dict[str, float] = {}
    contexts: dict[str, Any] = {}
    profiler = cProfile.Profile()

    async def timed(service: str, kind: str, events: list[Envelope]) -> None:
        if profile == service:
            profiler.enable()
        seconds = await handled(contexts[service], chunks(events, size))
        if profile == service:
            profiler.disable()
        spent[f"{service} {kind}"] = seconds / len(events) * 1e6

    settings = Settings(db_url=url, env="test")
    apps = {
        n: create_service_app(s, settings, bus=LogBus(), clock=ManualClock(T0))
        for n, s in SPECS.items()
    }
    lifespans = [app.router.lifespan_context(app) for app in apps.values()]
    for name, lifespan in zip(apps, lifespans, strict=True):
        await lifespan.__aenter__()
        contexts[name] = apps[name].state.ctx
    freeze_startup_heap()  # as a serving process does
    try:
        await timed("dispatch", "registered", regs)
        dispatched = await outbox_of(contexts["dispatch"], "ticket.dispatched")
        dispatched = [d for d in dispatched if d.ticket_id >= f"T{start:08d}"]
        await timed("sla", "registered", regs)
        await timed("sla", "dispatched", dispatched)
        deadlines = [
            d
            for d in await outbox_of(contexts["sla"], "sla.deadline_set")
            if d.ticket_id >= f"T{start:08d}"
        ]
        await timed("dispatch", "deadline_set", deadlines)
        await timed("evaluation", "registered", regs)
        await timed("evaluation", "dispatched", dispatched)
        await timed("channels", "dispatched", dispatched)
    finally:
        for lifespan in reversed(lifespans):
            await lifespan.__aexit__(None, None, None)
    if profile:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(30)
    return spent


async def run(tickets: int, size: int, rounds: int, profile: str | None) -> dict[str, Any]:
    async with scratch_database() as url:
        per_round = [
            await one_round(url, tickets, size, r * tickets, profile) for r in range(rounds)
        ]
    result: dict[str, Any] = {"tickets": tickets, "batch": size}
    for name in per_round[0]:
        times = [r[name] for r in per_round[1:] or per_round]  # the first round warms up
        result[name] = {
            "best_us": round(min(times), 1),
            "median_us": round(statistics.median(times), 1),
        }
    return result


def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    profile = sys.argv[4] if len(sys.argv) > 4 else None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the services run
        result = runner.run(run(tickets, size, rounds, profile))
    print(json.dumps(result, indent=1), flush=True)
    os._exit(0)  # a service leaves a thread behind that would hold the exit up


if __name__ == "__main__":
    main()
