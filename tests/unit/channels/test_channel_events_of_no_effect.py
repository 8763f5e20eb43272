"""The channels consumer neither runs nor records (inbox) the events that would change
nothing in it: no read model or notification takes anything from them and no webhook
subscription wants them. Whatever it judges so, its handler indeed leaves alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, insert, select, update

from services.channels.app import SPEC as CHANNELS
from services.channels.handlers import READ_HERE, of_no_effect, on_event
from services.channels.handlers.webhooks import create_subscription
from services.channels.models import deliveries, subscriptions
from services.channels.schemas import SubscriptionCreate
from shared.auth import Caller, Role
from shared.bus import LogBus, RawEvent
from shared.consumer import Consumer
from shared.db import UnitOfWork
from shared.events import TOPIC_SLA, TOPIC_TICKETS, Envelope
from shared.service import ServiceContext
from tests.unit.test_set_based_consumers import (
    T0,
    Running,
    channels_contacts,
    deadline_set,
    dispatched,
    on_sqlite,
    registered,
    sent,
    serving,
)


async def recorded(ctx: ServiceContext) -> set[str]:
    inbox = ctx.db.inbox
    async with ctx.db.engine.connect() as conn:
        return set((await conn.execute(select(inbox.c.event_id))).scalars())


async def subscribe(ctx: ServiceContext, *event_types: str) -> None:
    async with ctx.db.engine.begin() as conn:
        await conn.execute(
            insert(subscriptions).values(
                subscription_id="sub-1",
                url="https://example.org/hook",
                event_types=list(event_types),
                created_at=T0,
                created_by="integrator",
            )
        )


async def delivered(ctx: ServiceContext) -> list[str]:
    async with ctx.db.engine.connect() as conn:
        return list((await conn.execute(select(deliveries.c.event_id))).scalars())


async def test_events_nobody_here_takes_are_not_recorded_until_a_subscription_wants_them(
    tmp_path: Path,
) -> None:
    async with serving(CHANNELS, f"sqlite+aiosqlite:///{tmp_path}/channels.db") as ctx:
        await channels_contacts(ctx)
        consumer: Consumer = ctx.extras["consumer"]
        work_orders = [dispatched(n) for n in (1, 2)]
        expected = deadline_set(1, "completion")  # the requester's Open311 request shows it
        idle = [registered(1), registered(2), deadline_set(1, "acceptance")]
        idle.append(deadline_set(2, "dispatch", None))

        await consumer.handle_batch([*idle[:2], *work_orders, *idle[2:], expected])

        assert await recorded(ctx) == {str(e.event_id) for e in [*work_orders, expected]}
        await subscribe(ctx, "sla.*")
        later = deadline_set(3, "acceptance")
        await consumer.handle_batch([registered(3), later])
        await consumer.handle_batch([later])  # redelivered: delivered once

        assert str(later.event_id) in await recorded(ctx)
        assert await delivered(ctx) == [str(later.event_id)]
        assert await consumer.parked() == []


# every key a channels handler reads of a payload, so that each branch can be taken
PAYLOADS = {
    "unit's clock": {"unit_id": "city-water", "clock": "acceptance"},
    "dispatch clock": {"unit_id": None, "clock": "dispatch"},
    "completion clock": {"unit_id": "city-water", "clock": "completion"},
}


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
async def test_the_handler_changes_nothing_for_an_event_judged_of_no_effect(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    """For every event type channels consumes: if ``of_no_effect`` names the event (no
    subscription), ``on_event`` sends no statement at all for it."""
    judged: dict[str, bool] = {}
    async with serving(CHANNELS, f"sqlite+aiosqlite:///{tmp_path}/channels.db") as ctx:
        statements = sent(ctx)
        for event_type in sorted(CHANNELS.handlers):
            envelope = Envelope(
                type=event_type,
                occurred_at=T0,
                ticket_id="TJ0001",
                producer="test",
                payload={
                    "ticket_id": "TJ0001",
                    "deadline": T0.isoformat(),
                    "reply": {"result": "办结"},
                    **payload,
                },
            )
            async with ctx.db.engine.begin() as conn:
                uow = UnitOfWork(conn)
                judged[event_type] = bool(await of_no_effect(ctx, uow, [envelope]))
                if judged[event_type]:
                    before = len(statements)
                    await on_event(ctx, uow, envelope)
                    assert len(statements) == before, f"{event_type} changed something"
        async with ctx.db.engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(deliveries)) == 0

    assert judged["ticket.registered"]
    # the bus passes over unparsed the types not read here (while nobody subscribes to them)
    assert {t for t, idle in judged.items() if not idle} <= READ_HERE
    assert judged["sla.deadline_set"] == (payload["clock"] != "completion")
    assert not judged["ticket.dispatched"]
    assert not judged["sla.warning"] or payload["unit_id"] is None


def broken(n: int) -> list[RawEvent]:
    """A registration and an acceptance clock's deadline of ticket ``n`` whose type (and
    clock) can be read and nothing more: parsed, each is parked as a message that is not
    an event; passed over, nothing is heard of it."""
    event_id = f"00000000-0000-7000-8000-{n:012d}"
    registration = f'{{"event_id":"{event_id}","type":"ticket.registered","payload":"第{n}号"}}'
    deadline = deadline_set(n, "acceptance").to_json()
    clock = b'"clock":"acceptance"'
    cut = deadline[: deadline.index(clock) + len(clock)] + f',"round":第{n}轮}}}}'.encode()
    return [  # (in the order of their bytes)
        RawEvent(TOPIC_TICKETS, f"TJ{n:04d}", registration.encode()),
        RawEvent(TOPIC_SLA, f"TJ{n:04d}", cut),
    ]


def _raw(envelope: Envelope) -> RawEvent:
    return RawEvent(envelope.topic, envelope.key, envelope.to_json(), envelope.trace_id)


async def test_a_type_nobody_here_takes_is_passed_over_unparsed_until_a_subscription_wants_it(
    tmp_path: Path,
) -> None:
    await assert_types_taken_follow_the_subscriptions(on_sqlite(tmp_path))


async def assert_types_taken_follow_the_subscriptions(running: Running) -> None:
    """The bus decodes for channels only the types its read models take and those a
    subscription wants (of the clocks' deadlines, only the completion clock's, which the
    Open311 requests show), read for every batch: a subscription made here, or revoked by
    another process (straight in the database), counts from the next batch on."""
    async with running(CHANNELS, "channels") as ctx:
        bus = ctx.bus
        assert isinstance(bus, LogBus)
        await bus.start()
        consumer: Consumer = ctx.extras["consumer"]

        unread: list[bytes] = []

        async def publish(n: int) -> list[Envelope]:
            """Ticket ``n``'s broken messages, then its registration, work order and clocks."""
            good = [registered(n), dispatched(n), deadline_set(n, "acceptance")]
            good.append(deadline_set(n, "completion"))
            bad = broken(n)
            unread[:] = [m.value for m in bad]
            await bus.publish_raw([*bad, *map(_raw, good)])
            await bus.drain(timeout=10)
            return good

        first = await publish(1)
        assert await consumer.parked() == []  # never parsed
        assert await delivered(ctx) == []
        # the work order and the completion clock, which the Open311 request shows
        assert await recorded(ctx) == {str(first[1].event_id), str(first[3].event_id)}

        admin = Caller(sub="admin", role=Role.ADMIN)
        sub = await create_subscription(
            ctx,
            admin,
            SubscriptionCreate(
                url="https://example.org/hook",
                event_types=["ticket.registered", "sla.deadline_set"],
            ),
        )
        second = await publish(2)
        parked = await consumer.parked()
        assert sorted(orjson.loads(p["payload"])["raw"].encode() for p in parked) == unread
        expected = {str(e.event_id) for e in second if e.type != "ticket.dispatched"}
        assert set(await delivered(ctx)) == expected

        async with ctx.db.engine.begin() as conn:  # revoked by another process
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == sub.subscription_id)
                .values(revoked_at=T0)
            )
        third = await publish(3)
        assert len(await consumer.parked()) == 2
        assert set(await delivered(ctx)) == expected
        assert {str(third[1].event_id), str(third[3].event_id)} <= await recorded(ctx)
        assert str(third[2].event_id) not in await recorded(ctx)
