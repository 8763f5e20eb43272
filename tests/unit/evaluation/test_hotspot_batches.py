"""Hotspots (Art 27) tallied for a batch of registrations at once (the set-based consumer):
tickets joining an active hotspot, and those after the one that opens it, leave what
one-by-one handling leaves, in statements that do not grow with the batch; a hotspot
counts each of its tickets once, however often it is heard."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.evaluation.app import SPEC
from services.evaluation.handlers import monitoring
from services.evaluation.models import hotspot_tickets, hotspots
from shared.consumer import Consumer
from shared.db import UnitOfWork
from shared.events import Envelope, TicketRegistered, parse_payloads
from shared.service import ServiceContext
from tests.unit.test_set_based_consumers import (
    Running,
    contents,
    counting,
    on_sqlite,
    registered,
)

WATER, HEXI = "WATER-001", "120103"  # the default threshold: 10 tickets in an hour


def burst(first: int, count: int, minutes: int = 0) -> list[Envelope]:
    """``count`` tickets of one matter in one district, one a minute from ``minutes``."""
    return [
        registered(n, WATER, district=HEXI, minutes=minutes + i)
        for i, n in enumerate(range(first, first + count))
    ]


def elsewhere(first: int, count: int) -> list[Envelope]:
    """Tickets of the same matter in another district: they only count."""
    return [
        registered(n, WATER, district="120101", minutes=n % 7) for n in range(first, first + count)
    ]


# batches of registrations, and the ticket count of the one hotspot they make
JOINING = (
    [burst(1, 10), [*burst(11, 20, minutes=10), registered(99, WATER, district=HEXI, minutes=-30)]],
    31,
)  # the tenth opens it; the second batch joins it (one ticket older than its first)
OPENING = ([[*elsewhere(200, 3), *burst(1, 14), *elsewhere(203, 3)]], 14)  # opened mid-batch
HOTSPOT_BATCHES = pytest.mark.parametrize(
    ("batches", "joined"), [JOINING, OPENING], ids=["joining", "opening"]
)


async def handled(ctx: ServiceContext, batches: list[list[Envelope]], *, set_based: bool) -> None:
    consumer: Consumer = ctx.extras["consumer"]
    if not set_based:
        consumer.many = {}
    for batch in batches:
        for run in [batch] if set_based else [[e] for e in batch]:
            await consumer.handle_batch(run)


async def hotspot_rows(ctx: ServiceContext) -> list[tuple[int, int]]:
    """Each hotspot's ticket count beside the tickets it holds."""
    held = (
        select(func.count())
        .where(hotspot_tickets.c.hotspot_id == hotspots.c.hotspot_id)
        .scalar_subquery()
    )
    async with ctx.db.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(hotspots.c.ticket_count, held))]


async def assert_batches_leave_what_one_by_one_leaves(
    batches: list[list[Envelope]], joined: int, running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registrations one by one in one service, batch by batch (then each batch again,
    redelivered) in another: the same rows, one hotspot holding ``joined`` tickets."""
    left = []
    for set_based in (False, True):
        ids = (f"hotspot-{n}" for n in itertools.count(1))
        monkeypatch.setattr(monitoring, "new_id", ids.__next__)
        async with running(SPEC, "set-based" if set_based else "one-by-one") as ctx:
            await handled(ctx, batches, set_based=set_based)
            if set_based:
                await handled(ctx, batches, set_based=True)
            await ctx.relay.drain()
            left.append((await contents(ctx), await hotspot_rows(ctx)))

    assert left[1] == left[0]
    assert left[1][1] == [(joined, joined)]


@HOTSPOT_BATCHES
async def test_a_batch_of_registrations_makes_the_hotspot_one_by_one_handling_makes(
    batches: list[list[Envelope]],
    joined: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await assert_batches_leave_what_one_by_one_leaves(
        batches, joined, on_sqlite(tmp_path), monkeypatch
    )


def registrations(batch: list[Envelope]) -> list[monitoring.Registration]:
    return [
        monitoring.Registration(e.ticket_id, e.matter_code, e.district, e.registered_at)
        for e in parse_payloads(batch, TicketRegistered)
    ]


async def test_a_hotspot_counts_a_ticket_heard_again_once(tmp_path: Path) -> None:
    """The tally itself is not repeated for a ticket heard again (the consumer hears each
    registration once), but should it be, the hotspot's count stays that of its tickets:
    it adds what was really added, set-based or one by one."""
    async with on_sqlite(tmp_path)(SPEC, "again") as ctx:
        await handled(ctx, [burst(1, 10)], set_based=True)
        joining = registrations(burst(11, 5, minutes=10))

        async def tallied(tally: Callable[[UnitOfWork], Awaitable[None]]) -> list[tuple[int, int]]:
            async with ctx.db.engine.begin() as conn:
                await tally(UnitOfWork(conn))
            return await hotspot_rows(ctx)

        for _ in range(2):
            assert await tallied(lambda uow: monitoring.tally_hotspots(ctx, uow, joining)) == [
                (15, 15)
            ]
        r = joining[0]
        one = {"ticket_id": r.ticket_id, "matter_code": WATER, "district": HEXI}
        assert await tallied(
            lambda uow: monitoring.tally_hotspot(ctx, uow, **one, registered_at=r.registered_at)
        ) == [(15, 15)]


async def test_tickets_joining_a_hotspot_cost_the_same_statements_however_many(
    tmp_path: Path,
) -> None:
    """Not a few statements per joining ticket (and a count of the hotspot's tickets for
    each, once O(N²) over a busy day): the same few for a batch of 5 as for one of 40."""
    async with on_sqlite(tmp_path)(SPEC, "cost") as ctx:
        await handled(ctx, [burst(1, 10), burst(11, 2, minutes=10)], set_based=True)
        await ctx.relay.drain()  # monitor.hotspot published: the relay writes no more
        spent = {}
        first = 13
        for size in (5, 40):
            statements = counting(ctx)
            await handled(ctx, [burst(first, size, minutes=first)], set_based=True)
            spent[size] = statements()
            first += size
        rows = await hotspot_rows(ctx)

    assert rows == [(first - 1, first - 1)]
    assert spent[40] == spent[5], spent
