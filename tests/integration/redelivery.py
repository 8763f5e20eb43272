"""Levers for redelivery tests on the real Kafka and PostgreSQL: every message of every topic
published again as it is, a consumer group's offsets rewound, waiting until nothing moves, and
a snapshot of every service's tables (with the transaction that wrote each row) to compare."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import TOPICS
from shared.settings import SERVICES
from tests.integration.conftest import System

# every service consumes events (knowledge keeps the cases its answers are drawn from)
CONSUMERS = tuple(SERVICES)

# tables no event writes: migrations, and the nonces of signed requests (pruned on a timer)
NOT_EVENTS = ("alembic_version", "request_nonces")


def dsn(system: System) -> str:
    return system.db_url.replace("postgresql+asyncpg", "postgresql")


def _hashable(value: Any) -> Any:
    """A column's value as a Counter key: an array (asyncpg gives a list) as a tuple."""
    return tuple(map(_hashable, value)) if isinstance(value, list) else value


async def snapshot(system: System) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every row of every table of every service's schema, each with the id of the
    transaction that wrote it (``xmin``): a row written twice shows, and so does a row
    written again with the same values (most handlers would leave a repeated event's
    effects as they were even without the inbox; the inbox means they do not run at all)."""
    conn = await asyncpg.connect(dsn(system))
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'"
            " AND table_name <> ALL($2)",
            list(SERVICES),
            list(NOT_EVENTS),
        )
        found: dict[str, Counter[tuple[Any, ...]]] = {}
        for schema, table in tables:
            rows = await conn.fetch(f'SELECT xmin, * FROM "{schema}"."{table}"')  # noqa: S608
            found[f"{schema}.{table}"] = Counter(tuple(map(_hashable, r.values())) for r in rows)
        return found
    finally:
        await conn.close()


def differences(
    before: dict[str, Counter[tuple[Any, ...]]], after: dict[str, Counter[tuple[Any, ...]]]
) -> dict[str, Any]:
    """Per table that changed: the rows it gained and lost (a few of each)."""
    changed: dict[str, Any] = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, Counter()), after.get(table, Counter())
        if old != new:
            changed[table] = {
                "gained": list((new - old).elements())[:3],
                "lost": list((old - new).elements())[:3],
                "rows": [sum(old.values()), sum(new.values())],
            }
    return changed


async def topic_partitions(system: System) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=system.infra["kafka"])
    await admin.start()
    try:
        described = await admin.describe_topics([f"{system.prefix}{t}" for t in TOPICS])
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]


async def end_offsets(system: System) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=system.infra["kafka"], group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(system)
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def committed(system: System, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=system.infra["kafka"])
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{system.prefix}{group}")
    finally:
        await admin.close()
    return {TopicPartition(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


async def unsent(system: System) -> int:
    conn = await asyncpg.connect(dsn(system))
    try:
        return sum(
            [
                await conn.fetchval(
                    f"SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL"  # noqa: S608
                )
                for s in SERVICES
            ]
        )
    finally:
        await conn.close()


async def quiet(system: System, within: float = 60.0) -> dict[TopicPartition, int]:
    """Until nothing moves: every outbox sent, and every consuming group committed to the end
    of every partition it reads, twice in a row with the same ends. Returns the ends."""
    deadline = time.monotonic() + within
    previous: dict[TopicPartition, int] | None = None
    behind: dict[str, Any] = {}
    while time.monotonic() < deadline:
        ends = await end_offsets(system)
        behind = {}
        for group in CONSUMERS:
            at = await committed(system, group)
            lagging = {
                f"{tp.topic}:{tp.partition}": ends[tp] - o for tp, o in at.items() if o < ends[tp]
            }
            if lagging or not at:
                behind[group] = lagging or "nothing committed"
        if not behind and await unsent(system) == 0:
            if ends == previous:
                return ends
            previous = ends
        else:
            previous = None
        await asyncio.sleep(0.3)
    raise AssertionError(f"not quiet in {within} s: {behind}\n{system.logs()}")


async def republish_everything(system: System) -> int:
    """Every message on every topic published again as it is (same key, value, headers and
    partition, so the same event id behind the ones already handled). Returns how many."""
    ends = {tp: o for tp, o in (await end_offsets(system)).items() if o > 0}
    # "earliest": aiokafka's default reset, "latest", could race the seek to the beginning
    reader = AIOKafkaConsumer(
        bootstrap_servers=system.infra["kafka"],
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=system.infra["kafka"], linger_ms=5)
    await reader.start()
    await producer.start()
    sent = 0
    try:
        reader.assign(list(ends))
        await reader.seek_to_beginning(*ends)
        futures = []
        while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
            for tp, messages in (await reader.getmany(timeout_ms=500)).items():
                for m in messages:
                    if m.offset < ends[tp]:
                        futures.append(
                            await producer.send(
                                tp.topic,
                                m.value,
                                key=m.key,
                                headers=list(m.headers),
                                partition=tp.partition,
                            )
                        )
        await asyncio.gather(*futures)
        sent = len(futures)
    finally:
        await producer.stop()
        await reader.stop()
    return sent


async def rewind(system: System, group: str) -> None:
    """Commit the group's offsets back to the start of every partition it has read (the group
    has no members: its service is stopped)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system.infra["kafka"],
        group_id=f"{system.prefix}{group}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = list(await committed(system, group))
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        await consumer.commit({tp: starts[tp] for tp in tps})
    finally:
        await consumer.stop()
    assert set((await committed(system, group)).values()) == {0}
