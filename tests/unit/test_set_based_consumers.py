"""The set-based consumers (``many`` handlers, shared/consumer.py's fast path) leave
exactly what the event-by-event handlers leave, for a batch of many tickets with
redeliveries, duplicates under other event ids and tickets heard of out of order, and a
batch costs fewer statements than it has events."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select, text

from services.channels.app import SPEC as CHANNELS
from services.dispatch.app import SPEC as DISPATCH
from services.dispatch.handlers import many as dispatch_many
from services.dispatch.models import assignments, early_dispatch_deadlines
from services.evaluation.app import SPEC as EVALUATION
from services.evaluation.handlers import monitoring
from services.intake.app import SPEC as INTAKE
from services.sla.app import SPEC as SLA
from services.sla.handlers import many as sla_many
from shared.bus import LogBus
from shared.clock import ManualClock
from shared.consumer import OWN_TRACES, Consumer
from shared.db import UnitOfWork
from shared.events import (
    DeadlineSet,
    Envelope,
    Event,
    TicketAccepted,
    TicketDispatched,
    TicketFlagged,
    TicketPendingDetermination,
    TicketRegistered,
)
from shared.events.base import event_uuid
from shared.logging import trace_id_var
from shared.service import ServiceContext, ServiceSpec, create_service_app
from shared.settings import Settings
from tests.conftest import ROOT, at

T0 = at("2026-03-02 09:00")  # a Monday
CATALOG = json.loads((ROOT / "services/dispatch/data/catalog.json").read_text("utf-8"))
ROUTED = [m["code"] for m in CATALOG["matters"] if m.get("responsible")]
DISTRICTS = [d["code"] for d in CATALOG["districts"]]
# what differs between two runs of the same events: serial ids and wall-clock stamps
UNSTABLE = {"id", "published_at", "created_at", "attempts", "last_error"}
UNSTABLE |= {"notification_id", "delivery_id"}


def env(event_: Event, producer: str, minutes: int = 0) -> Envelope:
    """The event in its envelope, with its ticket's own trace id (as a request through the
    gateway gives it): what a handler emits about a ticket carries that ticket's trace id."""
    envelope = event_.envelope(producer=producer, occurred_at=T0 + timedelta(minutes=minutes))
    return envelope.model_copy(update={"trace_id": f"trace-{envelope.key}"})


def registered(
    n: int,
    matter: str | None = None,
    *,
    flagged: bool = False,
    district: str | None = None,
    minutes: int = 0,
) -> Envelope:
    return env(
        TicketRegistered(
            ticket_id=f"TJ{n:04d}",
            channel="phone",
            type="help",
            urgency="life_safety" if n % 5 == 0 else "livelihood",
            matter_code=matter or ROUTED[n % len(ROUTED)],
            district=district or DISTRICTS[n % len(DISTRICTS)],
            content="小区停水三天了",
            registered_at=T0 + timedelta(minutes=minutes),
            flagged=flagged,
        ),
        "intake",
    )


def dispatched(n: int, dispatch_no: int = 1, urgency: str = "livelihood") -> Envelope:
    return env(
        TicketDispatched(
            ticket_id=f"TJ{n:04d}",
            unit_id="city-water",
            matter_code=ROUTED[n % len(ROUTED)],
            district=DISTRICTS[n % len(DISTRICTS)],
            type="help",
            urgency=urgency,  # type: ignore[arg-type]
            dispatched_at=T0 + timedelta(minutes=dispatch_no),
            dispatch_no=dispatch_no,
        ),
        "dispatch",
        dispatch_no,
    )


def deadline_set(
    n: int,
    clock: str,
    unit: str | None = "city-water",
    *,
    started_at: datetime = T0,
    round_: int = 1,
    deadline: datetime | None = None,
) -> Envelope:
    return env(
        DeadlineSet(
            ticket_id=f"TJ{n:04d}",
            clock=clock,  # type: ignore[arg-type]
            round=round_,
            unit_id=unit,
            started_at=started_at,
            deadline=deadline or T0 + timedelta(hours=n % 7 + 1),
            period="1h",
        ),
        "sla",
    )


def again(envelope: Envelope) -> Envelope:
    """The same fact under another event id (a producer's retry)."""
    return envelope.model_copy(update={"event_id": event_uuid()})


def dispatch_batch() -> list[Envelope]:
    batch = [registered(n) for n in range(1, 25)]
    batch[3] = registered(4, "OTHER-001")  # no catalog route: the one-by-one way
    flag = TicketFlagged(
        ticket_id="TJ0030", flagged_at=T0, keywords=["x"], district="120101", matter_code="X"
    )
    batch += [env(flag, "intake"), registered(30), again(batch[5]), batch[6]]
    batch += [deadline_set(n, "dispatch", None) for n in range(1, 12)]
    # the SLA's acceptance deadlines replace dispatch's own, but only those of the clock now
    # running: not one of another round, one that started before the dispatch (less the
    # tolerance), one of a ticket not dispatched (TJ0004) or not known (TJ0099); nor a
    # completion deadline before the acceptance
    batch += [deadline_set(n, "acceptance") for n in range(1, 9)]
    batch += [
        deadline_set(9, "acceptance", started_at=T0 - timedelta(milliseconds=999)),
        deadline_set(10, "acceptance", started_at=T0 - timedelta(seconds=2)),
        deadline_set(11, "acceptance", round_=2),
        deadline_set(12, "completion"),
        deadline_set(13, "dispatch", None, round_=2),
        deadline_set(99, "acceptance"),
    ]
    return batch


def dispatch_early_batch() -> list[Envelope]:
    """The SLA's dispatch deadlines heard of before their tickets' registrations (they travel
    on another topic): each waits for its registration, routed set-based or the one-by-one
    way (TJ0004), a later one of the same clock replacing an earlier (TJ0006) and one
    redelivered under another event id changing nothing (TJ0003); one of a second round
    (TJ0005) or of a ticket not registered (TJ0098) changes no work order."""
    early = [deadline_set(n, "dispatch", None) for n in range(1, 21)]
    batch = [*early, again(early[2]), deadline_set(98, "dispatch", None)]
    batch += [
        deadline_set(6, "dispatch", None, deadline=T0 + timedelta(minutes=30)),
        deadline_set(5, "dispatch", None, round_=2, deadline=T0 + timedelta(days=3)),
    ]
    registrations = [registered(n) for n in range(1, 25)]
    registrations[3] = registered(4, "OTHER-001")  # no catalog route: the one-by-one way
    batch += registrations
    batch += [deadline_set(n, "dispatch", None) for n in range(21, 25)]  # in order
    batch += [again(early[1]), deadline_set(12, "dispatch", None)]
    return batch


async def early_deadlines_kept(ctx: ServiceContext) -> None:
    """What ``dispatch_early_batch`` must leave: every registered ticket's dispatch deadline
    of its first round, whichever came first, and only the unregistered one's waiting."""
    async with ctx.db.engine.connect() as conn:
        rows = await conn.execute(select(assignments.c.ticket_id, assignments.c.dispatch_deadline))
        found = {r.ticket_id: r.dispatch_deadline for r in rows}
        waiting = (await conn.execute(select(early_dispatch_deadlines.c.ticket_id))).all()
    wanted = {f"TJ{n:04d}": T0 + timedelta(hours=n % 7 + 1) for n in range(1, 25)}
    wanted["TJ0006"] = T0 + timedelta(minutes=30)
    assert found == wanted
    assert [r.ticket_id for r in waiting] == ["TJ0098"]


def sla_batch() -> list[Envelope]:
    batch: list[Envelope] = []
    for n in range(1, 21):
        batch.append(registered(n))
        if n % 2:
            batch.append(dispatched(n))
    # dispatched together (one time), each class with its own acceptance period
    urgencies = ("general", "livelihood", "life_safety")
    batch += [dispatched(n, urgency=urgencies[n % 3]) for n in range(2, 21, 2)]
    return batch + [again(batch[0]), again(batch[1]), batch[2]]


def evaluation_batch() -> list[Envelope]:
    batch: list[Envelope] = [dispatched(40)]  # heard of before its registration
    for n in range(1, 16):
        batch += [registered(n, flagged=n == 3), deadline_set(n, "dispatch", None)]
    batch += [registered(40), dispatched(7, dispatch_no=2)]
    # a burst of one matter in one district: counted, then a hotspot opens and grows
    # (the default threshold is 10 in an hour)
    batch += [registered(100 + n, "WATER-001", district="120103", minutes=n) for n in range(14)]
    batch += [dispatched(n) for n in range(1, 16)]
    batch += [deadline_set(n, "acceptance") for n in range(1, 16)]
    return batch + [again(batch[1]), batch[2]]


def channels_batch() -> list[Envelope]:
    batch = [registered(n) for n in range(1, 9)] + [dispatched(n) for n in range(1, 9)]
    batch += [deadline_set(n, "acceptance") for n in range(1, 9)]
    return batch + [dispatched(3, dispatch_no=2), again(batch[9])]


async def channels_contacts(ctx: ServiceContext) -> None:
    """A unit with an SMS contact and a named staff member: each work order reaches both."""
    async with ctx.db.engine.begin() as conn:
        for table, row in (
            ("unit_contacts", "'city-water', '[\"13900000001\"]', '[]', :t, 'admin'"),
            ("unit_staff_phones", "'city-water', '[\"13900000002\"]', :t"),
        ):
            await conn.execute(text(f"INSERT INTO {table} VALUES ({row})"), {"t": T0})


def intake_batch() -> list[Envelope]:
    accepted = [
        env(TicketAccepted(ticket_id=f"TJ{n:04d}", unit_id="city-water", accepted_at=T0), "d", 2)
        for n in range(1, 5)
    ]
    batch = [dispatched(n) for n in range(1, 9)] + accepted
    return batch + [dispatched(2), again(batch[3]), dispatched(5, dispatch_no=3)]


async def intake_tickets(ctx: ServiceContext) -> None:
    """Tickets as intake registered them; the last was answered on the spot."""
    async with ctx.db.engine.begin() as conn:
        for n in range(1, 9):
            status = "answered" if n == 8 else "registered"
            await conn.execute(
                text(
                    "INSERT INTO tickets (ticket_id, channel, type, urgency, matter_code, "
                    "district, content, anonymous, flagged, status, registered_at, "
                    "registered_by) VALUES (:t, 'phone', 'help', 'general', 'WATER-001', "
                    "'120103', '停水', false, false, :s, :at, 'operator')"
                ),
                {"t": f"TJ{n:04d}", "s": status, "at": T0},
            )


SETUP = {"channels": channels_contacts, "intake": intake_tickets}


# a service of one spec running on a database of its own, named for the run
Running = Callable[[ServiceSpec, str], AbstractAsyncContextManager[ServiceContext]]


@asynccontextmanager
async def serving(spec: ServiceSpec, db_url: str) -> AsyncIterator[ServiceContext]:
    bus = LogBus()
    app = create_service_app(
        spec, Settings(db_url=db_url, env="test"), bus=bus, clock=ManualClock(T0)
    )
    try:
        async with app.router.lifespan_context(app):
            yield app.state.ctx
    finally:
        await bus.stop()


def on_sqlite(tmp: Path) -> Running:
    return lambda spec, name: serving(spec, f"sqlite+aiosqlite:///{tmp}/{name}.db")


# the tables of a service's database (its schema, on PostgreSQL)
TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT table_name FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
}


async def contents(ctx: ServiceContext) -> dict[str, list[str]]:
    """Every table's rows, without serial ids, wall-clock stamps and event ids."""
    tables: dict[str, list[str]] = {}
    async with ctx.db.engine.connect() as conn:
        names = (await conn.execute(text(TABLES[conn.dialect.name]))).scalars()
        for name in [n for n in names if n not in ("alembic_version", "sqlite_sequence")]:
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).mappings().all()
            tables[name] = sorted(repr(_stable(dict(r))) for r in rows)
    return tables


def _stable(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if k not in UNSTABLE}
    if isinstance(row.get("payload"), str) and row["payload"].startswith("{"):
        payload = orjson.loads(row["payload"])
        if row.get("key") == payload.get("event_id"):
            row["key"] = "…"  # an event about no ticket is keyed by its own id
            # and carries the trace id of whichever ticket's handling emitted it (a hotspot:
            # the ticket that tipped it one by one, the run's first set-based)
            payload.pop("trace_id", None)
        payload.pop("event_id", None)
        row["payload"] = payload
    if "topic" in row:  # an outbox row: a new event, a new id
        row.pop("event_id", None)
    return row


def sent(ctx: ServiceContext) -> list[str]:
    """The statements sent to ``ctx``'s database from now on (the list grows)."""
    statements: list[str] = []
    event.listen(
        ctx.db.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, *args: statements.append(sql),
    )
    return statements


def counting(ctx: ServiceContext) -> Callable[[], int]:
    statements = sent(ctx)
    # a notification queued (its opt-out check and its row, per recipient): not counted;
    # nor the relay's looks for unsent events (every 0.5 s on its own: a slow machine saw
    # one inside a batch's count)
    skip = ("SAVEPOINT", "RELEASE", "INSERT INTO notifications", "UPDATE outbox")
    return lambda: sum(
        1
        for s in statements
        if not s.startswith(skip) and "FROM opt_outs" not in s and "FROM outbox" not in s
    )


BATCHES = pytest.mark.parametrize(
    ("spec", "batch"),
    [
        (DISPATCH, dispatch_batch),
        (DISPATCH, dispatch_early_batch),
        (SLA, sla_batch),
        (EVALUATION, evaluation_batch),
        (CHANNELS, channels_batch),
        (INTAKE, intake_batch),
    ],
    ids=["dispatch", "dispatch-early", "sla", "evaluation", "channels", "intake"],
)


async def assert_set_based_leaves_what_one_by_one_leaves(
    spec: ServiceSpec,
    events: list[Envelope],
    running: Running,
    monkeypatch: pytest.MonkeyPatch,
    then: Callable[[ServiceContext], Awaitable[None]] | None = None,
) -> None:
    """The events one by one in one service, all in one batch (then again, redelivered) in
    another: the same rows, nothing parked, fewer statements than events; ``then`` checks
    what each way left."""
    serial = itertools.count(1)
    monkeypatch.setattr(monitoring, "new_id", lambda: f"hotspot-{next(serial)}")
    async with running(spec, "one-by-one") as ctx:
        if spec.name in SETUP:
            await SETUP[spec.name](ctx)
        consumer: Consumer = ctx.extras["consumer"]
        consumer.many = {}
        for envelope in events:
            await consumer.handle_batch([envelope])
        await ctx.relay.drain()
        expected = await contents(ctx)
        if then is not None:
            await then(ctx)
    serial = itertools.count(1)
    async with running(spec, "set-based") as ctx:
        if spec.name in SETUP:
            await SETUP[spec.name](ctx)
        consumer = ctx.extras["consumer"]
        statements = counting(ctx)
        await consumer.handle_batch(events)
        spent = statements()
        await consumer.handle_batch(events)  # redelivered: changes nothing
        await ctx.relay.drain()
        got = await contents(ctx)
        parked = await consumer.parked()
        if then is not None:
            await then(ctx)

    assert got == expected
    assert parked == []
    assert spent < len(events), f"{spent} statements for {len(events)} events"


@BATCHES
async def test_a_batch_handled_set_based_leaves_what_one_by_one_handling_leaves(
    spec: ServiceSpec,
    batch: Callable[[], list[Envelope]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await assert_set_based_leaves_what_one_by_one_leaves(
        spec, batch(), on_sqlite(tmp_path), monkeypatch
    )


async def test_dispatch_deadlines_heard_of_before_their_tickets_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await assert_set_based_leaves_what_one_by_one_leaves(
        DISPATCH, dispatch_early_batch(), on_sqlite(tmp_path), monkeypatch, early_deadlines_kept
    )


async def assert_runs_emit_under_each_tickets_trace(running: Running) -> None:
    """A set-based run makes what it emits about each ticket under that ticket's own trace
    id (as one by one), not under the run's first and copied afterwards: the SLA's clocks
    of registrations and of dispatches, dispatch's work orders, dispatched by the catalog or
    (TJ0012, TJ0014: no catalog route) the one-by-one way. Their consumers count on it
    (``traced``: they do not go over what the run emitted again)."""
    routed_elsewhere = [registered(n, "OTHER-001" if n % 2 == 0 else None) for n in range(11, 16)]
    runs = [
        (SLA, sla_many.on_registered, [registered(n) for n in range(1, 6)]),
        (SLA, sla_many.on_dispatched, [dispatched(n) for n in range(1, 6)]),
        (DISPATCH, dispatch_many.on_registered, [registered(n) for n in range(1, 6)]),
        (DISPATCH, dispatch_many.on_registered, routed_elsewhere),
    ]
    for spec, handler, batch in runs:
        assert getattr(handler, OWN_TRACES, False), handler
        async with running(spec, f"traces-{spec.name}-{handler.__name__}") as ctx:
            if spec is SLA and handler is sla_many.on_dispatched:
                await ctx.extras["consumer"].handle_batch([registered(n) for n in range(1, 6)])
            async with ctx.db.kept_transaction() as conn:
                uow = UnitOfWork(conn)
                token = trace_id_var.set(batch[0].trace_id)  # as the consumer runs a run
                try:
                    await handler(ctx, uow, batch)
                finally:
                    trace_id_var.reset(token)
            assert sorted((e.key, e.trace_id) for e in uow.events) == [
                (e.key, f"trace-{e.key}") for e in batch
            ], handler
            if batch is routed_elsewhere:  # both ways emitted
                assert {e.type for e in uow.events} == {
                    TicketDispatched.TYPE,
                    TicketPendingDetermination.TYPE,
                }


async def test_a_set_based_run_emits_under_each_tickets_own_trace_id(tmp_path: Path) -> None:
    await assert_runs_emit_under_each_tickets_trace(on_sqlite(tmp_path))


async def test_work_orders_reach_the_same_recipients_set_based_as_one_by_one(
    tmp_path: Path,
) -> None:
    """Channels' set-based work orders pass over those whose unit has nobody to tell, and
    only those: a unit with an SMS contact alone, one with a named staff member's phone
    alone, one with a contact holding neither a phone nor a WeChat follower, and one with
    nobody, in one batch, queue the very notifications the events queue one by one."""
    units = ["city-water", "city-gas", "120101-urban", "120103-housing"]
    batch = [
        env(
            TicketDispatched(
                ticket_id=f"TJ{n:04d}",
                unit_id=units[n % len(units)],
                matter_code=ROUTED[n % len(ROUTED)],
                district=DISTRICTS[n % len(DISTRICTS)],
                type="help",
                urgency="livelihood",
                dispatched_at=T0,
            ),
            "dispatch",
        )
        for n in range(1, 13)
    ]
    queued: dict[str, list[tuple[str, str, str]]] = {}
    for way in ("one-by-one", "set-based"):
        async with on_sqlite(tmp_path)(CHANNELS, way) as ctx:
            async with ctx.db.engine.begin() as conn:
                for table, row in (
                    ("unit_contacts", "'city-water', '[\"13900000001\"]', '[]', :t, 'admin'"),
                    ("unit_contacts", "'120101-urban', '[]', '[]', :t, 'admin'"),
                    ("unit_staff_phones", "'city-gas', '[\"13900000002\"]', :t"),
                ):
                    await conn.execute(text(f"INSERT INTO {table} VALUES ({row})"), {"t": T0})
            consumer: Consumer = ctx.extras["consumer"]
            if way == "one-by-one":
                consumer.many = {}
                for envelope in batch:
                    await consumer.handle_batch([envelope])
            else:
                await consumer.handle_batch(batch)
            async with ctx.db.engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT ticket_id, medium, recipient FROM notifications")
                )
                queued[way] = sorted(tuple(r) for r in rows)
    assert queued["set-based"] == queued["one-by-one"]
    assert {t for t, _, _ in queued["set-based"]} == {
        e.ticket_id for e in batch if e.payload["unit_id"] in ("city-water", "city-gas")
    }
    assert {r for _, _, r in queued["set-based"]} == {"13900000001", "13900000002"}
