"""Live updates for the overdue and at-risk board: the console listens to the SLA events
on the bus and pushes each one to the open boards as a server-sent event. Nothing polls:
a board changes when a deadline is set, warned, overdue or escalated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson

from shared.bus import Bus, make_bus, per_event
from shared.events import Envelope
from shared.events.base import TOPIC_SLA
from shared.settings import Settings

log = logging.getLogger("hotline.console.live")
QUEUE_SIZE = 100
KEEPALIVE_SECONDS = 15.0
# A new consumer group on Kafka starts at the oldest event; older ones are history.
_STALE = timedelta(minutes=5)


class LiveFeed:
    """Fans SLA events out to every connected browser. In embedded mode it shares the
    services' in-process bus; in distributed mode it opens its own Kafka consumer (one
    group per gateway process, so every process sees every event)."""

    def __init__(self, settings: Settings, bus: Bus | None) -> None:
        self._settings = settings
        self._bus = bus
        self._own_bus: Bus | None = None
        self._listeners: set[asyncio.Queue[bytes]] = set()
        self._started = datetime.now(UTC)
        self._starting = asyncio.Lock()
        if bus is not None:
            bus.subscribe("console-live", [TOPIC_SLA], per_event(self._on_event))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._own_bus is not None:
                await self._own_bus.stop()
                self._own_bus = None

    async def _ensure_listening(self) -> None:
        """Distributed mode: the Kafka consumer starts with the first open board, so a
        gateway nobody watches costs Kafka nothing."""
        if self._bus is not None or not self._settings.bus_url.startswith("kafka://"):
            return
        async with self._starting:
            if self._own_bus is not None:
                return
            bus = make_bus(
                self._settings.bus_url,
                prefix=self._settings.topic_prefix,
                partitions=self._settings.kafka_partitions,
            )
            group = f"console-live-{socket.gethostname()}-{os.getpid()}"
            bus.subscribe(group, [TOPIC_SLA], per_event(self._on_event))
            try:
                await bus.start()
            except Exception as exc:  # noqa: BLE001 - the board works, only not live
                log.warning("live feed unavailable", extra={"error": repr(exc)})
                return
            self._own_bus = bus

    async def _on_event(self, envelope: Envelope) -> None:
        if envelope.occurred_at < self._started - _STALE:
            return
        message = orjson.dumps(
            {
                "type": envelope.type,
                "ticket_id": envelope.ticket_id,
                "occurred_at": envelope.occurred_at.isoformat(),
                "kind": envelope.payload.get("kind"),
            }
        )
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled browser misses one
                queue.put_nowait(message)

    async def stream(self) -> AsyncIterator[bytes]:
        """One browser's ``text/event-stream``: each SLA event as ``event: sla``."""
        await self._ensure_listening()
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)
        self._listeners.add(queue)
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"  # keeps proxies from closing an idle stream
                    continue
                yield b"event: sla\ndata: " + message + b"\n\n"
        finally:
            self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._listeners)
