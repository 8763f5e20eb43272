"""A message on Kafka that is not an event stalls nothing: the SLA service (its real app,
on the real Kafka and PostgreSQL) handles the events on both sides of it in the same
partition, parks it once in its dead letters (listed by the admin API), and its group's
committed position moves past it; delivered again, it is not parked twice."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from services.sla.app import SPEC
from shared.auth import Caller, Role, SignedAs
from shared.events import TOPIC_TICKETS
from shared.service import create_service_app
from shared.settings import Settings
from tests.integration.conftest import eventually
from tests.integration.joining import JOIN_TIMEOUT
from tests.integration.test_bus_batching import committed
from tests.unit.sla.conftest import registered

pytestmark = pytest.mark.asyncio(loop_scope="function")

# not UTF-8, not JSON, and a requester's phone (kept in the dead letter, never logged)
GARBAGE = b"\x00\xff\xfe not an event: 13920001234"
ADMIN = Caller(sub="admin", role=Role.ADMIN)
AGENCY = Caller(sub="agency", role=Role.AGENCY)


@asynccontextmanager
async def sla_service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The SLA service's own app with its own KafkaBus (as ``python -m services.sla``), and
    a client of its API."""
    app: FastAPI = create_service_app(SPEC, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
            yield client


async def effects(db_url: str) -> tuple[int, ...]:
    """What the SLA service stored: clocks, events emitted, events handled, dead letters."""
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return tuple(
            [
                await conn.fetchval(f"SELECT count(*) FROM sla.{table}")  # noqa: S608
                for table in ("clocks", "outbox", "inbox", "dead_letters")
            ]
        )
    finally:
        await conn.close()


async def rewind_to_start(kafka: str, group: str, tp: TopicPartition) -> None:
    """The group (no members: its service is stopped) back at the start of ``tp``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 0})
    finally:
        await consumer.stop()


async def test_a_message_that_is_not_an_event_is_parked_and_the_group_moves_past_it(
    infra: dict[str, str], topic_prefix: str, pg_url: str
) -> None:
    prefix = topic_prefix
    topic, group = f"{prefix}{TOPIC_TICKETS}", f"{prefix}sla"
    first, second = f"TJ{uuid.uuid4().hex[:10]}", f"TJ{uuid.uuid4().hex[:10]}"
    settings = Settings(
        env="test",
        db_url=pg_url,
        db_pool_size=4,
        bus_url=f"kafka://{infra['kafka']}",
        topic_prefix=prefix,
        relay_poll_seconds=0.2,
    )
    as_admin = SignedAs(settings.service_secret, ADMIN)

    async def group_at(end: int) -> bool:
        # the SLA service reads hotline.tickets only, and only its partition 0 has messages
        return await committed(infra["kafka"], group) >= end

    async with sla_service(settings) as sla:  # its bus made the topics

        async def clocks(ticket_id: str) -> list[Any]:
            r = await sla.get(
                f"/tickets/{ticket_id}/clocks", auth=SignedAs(settings.service_secret, AGENCY)
            )
            return r.json() if r.status_code == 200 else []

        producer = AIOKafkaProducer(bootstrap_servers=infra["kafka"])
        await producer.start()
        try:  # one partition, in this order: an event, the garbage, an event
            for key, value in (
                (first, registered(first).to_json()),
                (first, GARBAGE),
                (second, registered(second).to_json()),
            ):
                await producer.send_and_wait(topic, value, key=key.encode(), partition=0)
        finally:
            await producer.stop()
        # the first clock waits for the group's first join too: allowed as long as that
        # may take on a loaded machine (tests/integration/joining.py)
        await eventually(lambda: clocks(first), f"{first}'s clock", JOIN_TIMEOUT)
        await eventually(lambda: clocks(second), f"{second}'s clock, after the garbage")
        await eventually(lambda: group_at(3), "the group committed past the garbage")
        r = await sla.get("/dead-letters", auth=as_admin)
        assert r.status_code == 200, r.text
        [parked] = r.json()
    stored = await effects(pg_url)

    assert (parked["event_type"], parked["topic"], parked["state"], parked["attempts"]) == (
        "unparseable",
        TOPIC_TICKETS,
        "parked",
        1,
    )
    payload = parked["payload"]
    assert (payload["partition"], payload["offset"], payload["key"]) == (0, 1, first)
    assert payload["raw_encoding"] == "base64"
    assert base64.b64decode(payload["raw"]) == GARBAGE
    assert parked["error"]

    # delivered again from the start (a crash before the commit): nothing changes
    await rewind_to_start(infra["kafka"], group, TopicPartition(topic, 0))
    assert not await group_at(1)
    async with sla_service(settings) as sla:
        await eventually(lambda: group_at(3), "the group committed past it again", JOIN_TIMEOUT)
        r = await sla.get("/dead-letters", auth=as_admin)
        assert [d["id"] for d in r.json()] == [parked["id"]]
    assert await effects(pg_url) == stored
