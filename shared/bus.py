"""The bus every service publishes to and consumes from: in-process or Apache Kafka."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from shared.events import TOPICS, Envelope

log = logging.getLogger("hotline.bus")
Handler = Callable[[Envelope], Awaitable[None]]


class RawEvent(NamedTuple):
    """An envelope already serialised (as the outbox stores it): the relay sends these
    without parsing and re-encoding each one."""

    topic: str
    key: str
    value: bytes


class Bus(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None: ...

    async def publish_raw(self, events: Sequence[RawEvent]) -> None: ...

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Subscription:
    group: str
    topics: frozenset[str]
    handler: Handler


async def _retry_until_handled(handler: Handler, envelope: Envelope, group: str) -> None:
    """A consumer never skips an event: a failing handler is retried with back-off."""
    delay = 0.05
    while True:
        try:
            await handler(envelope)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "handler failed; retrying",
                extra={
                    "group": group,
                    "event_type": envelope.type,
                    "event": str(envelope.event_id),
                },
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class MemoryBus:
    """Embedded mode: ``publish`` returns once every subscribed group has handled each
    event, so an outbox row is marked sent only after its effects are stored."""

    def __init__(self) -> None:
        self._subs: list[_Subscription] = []
        self._lock = asyncio.Lock()

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        self._subs.append(_Subscription(group, frozenset(topics), handler))

    async def publish(self, events: Sequence[Envelope]) -> None:
        for envelope in events:
            for sub in self._subs:
                if envelope.topic in sub.topics:
                    await _retry_until_handled(sub.handler, envelope, sub.group)

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        await self.publish([Envelope.from_json(e.value) for e in events])

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class KafkaBus:
    """Apache Kafka through aiokafka: idempotent producer with ``acks=all``; one consumer
    group per service; an offset is committed only after the handler has stored its effect
    (the handler's inbox row makes a redelivery harmless)."""

    def __init__(self, bootstrap: str, *, prefix: str = "", partitions: int = 3) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.partitions = partitions
        self._subs: list[_Subscription] = []
        self._producer: object | None = None
        self._consumers: list[object] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def subscribe(self, group: str, topics: Sequence[str], handler: Handler) -> None:
        self._subs.append(_Subscription(group, frozenset(topics), handler))

    async def _ensure_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(self._topic(t), num_partitions=self.partitions, replication_factor=1)
                for t in TOPICS
                if self._topic(t) not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        await self._ensure_topics()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
        )
        await producer.start()
        self._producer = producer
        for sub in self._subs:
            consumer = AIOKafkaConsumer(
                *[self._topic(t) for t in sorted(sub.topics)],
                bootstrap_servers=self.bootstrap,
                group_id=self._topic(sub.group),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
            )
            await consumer.start()
            self._consumers.append(consumer)
            self._tasks.append(
                asyncio.create_task(self._consume(consumer, sub), name=f"consume:{sub.group}")
            )

    async def _consume(self, consumer: object, sub: _Subscription) -> None:
        from aiokafka import AIOKafkaConsumer

        assert isinstance(consumer, AIOKafkaConsumer)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, messages in batches.items():
                for message in messages:
                    envelope = Envelope.from_json(message.value)
                    await _retry_until_handled(sub.handler, envelope, sub.group)
                if messages:
                    await consumer.commit({tp: messages[-1].offset + 1})

    async def publish(self, events: Sequence[Envelope]) -> None:
        await self.publish_raw([RawEvent(e.topic, e.key, e.to_json()) for e in events])

    async def publish_raw(self, events: Sequence[RawEvent]) -> None:
        """Send all, then wait for every acknowledgement (acks=all): the relay marks its
        rows sent only after this returns."""
        from aiokafka import AIOKafkaProducer

        producer = self._producer
        if not isinstance(producer, AIOKafkaProducer):
            raise RuntimeError("Kafka bus is not started")
        futures = [
            await producer.send(self._topic(e.topic), value=e.value, key=e.key.encode())
            for e in events
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for consumer in self._consumers:
            await consumer.stop()  # type: ignore[attr-defined]
        if self._producer is not None:
            await self._producer.stop()  # type: ignore[attr-defined]
        self._tasks, self._consumers, self._producer = [], [], None


def make_bus(url: str, *, prefix: str = "", partitions: int = 3) -> MemoryBus | KafkaBus:
    if url.startswith("memory"):
        return MemoryBus()
    if url.startswith("kafka://"):
        return KafkaBus(url.removeprefix("kafka://"), prefix=prefix, partitions=partitions)
    raise ValueError(f"unknown bus url {url!r} (use memory:// or kafka://host:port)")
