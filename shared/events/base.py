"""The envelope, the base of every event model, the registry and upcasting.

The JSON these produce is the contract between services (see docs/events.md). A consumer
reads an event with ``parse_payload``; an older version is upcast before it is used.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.logging import trace_id_var

Channel = Literal["phone", "web", "wechat_official", "wechat_mini"]
TicketType = Literal["consultation", "complaint", "help", "report", "suggestion", "praise"]
Urgency = Literal["life_safety", "livelihood", "general"]
ClockKind = Literal["dispatch", "acceptance", "completion"]

TOPIC_TICKETS = "hotline.tickets"
TOPIC_SLA = "hotline.sla"
TOPIC_KNOWLEDGE = "hotline.knowledge"
TOPIC_EVALUATION = "hotline.evaluation"
TOPIC_CATALOG = "hotline.catalog"
TOPIC_CHANNELS = "hotline.channels"
TOPICS = (
    TOPIC_TICKETS,
    TOPIC_SLA,
    TOPIC_KNOWLEDGE,
    TOPIC_EVALUATION,
    TOPIC_CATALOG,
    TOPIC_CHANNELS,
)

_TOPIC_BY_PREFIX = {
    "ticket": TOPIC_TICKETS,
    "sla": TOPIC_SLA,
    "knowledge": TOPIC_KNOWLEDGE,
    "evaluation": TOPIC_EVALUATION,
    "supervision": TOPIC_EVALUATION,
    "monitor": TOPIC_EVALUATION,
    "catalog": TOPIC_CATALOG,
    "channel": TOPIC_CHANNELS,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_RAND_A, _RAND_B = (1 << 12) - 1, (1 << 62) - 1


def event_uuid(unix_ms: int | None = None) -> uuid.UUID:
    """A new event id: a UUID v7 (RFC 9562), whose first 48 bits are the Unix time in
    milliseconds and the rest random (74 bits). Ids made later sort after those made
    earlier (as UUIDs and as their hyphenated text), so the inboxes' and the outboxes'
    unique indexes on the event id take each new id at their right-hand end, on pages
    just written, instead of on any page at all (a random v4); the ids stay as unique.
    ``unix_ms`` is for tests (the current time otherwise)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    return uuid.UUID(
        int=(ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62 & _RAND_A) << 64
        | 0b10 << 62
        | rand & _RAND_B
    )


class Envelope(BaseModel):
    """What travels on the bus. ``payload`` is the event model's JSON."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=event_uuid)
    type: str
    version: int = 1
    occurred_at: AwareDatetime
    ticket_id: str | None = None
    producer: str
    trace_id: str | None = None
    payload: dict[str, Any]

    @property
    def topic(self) -> str:
        return topic_for(self.type)

    @property
    def key(self) -> str:
        return self.ticket_id or str(self.event_id)

    def to_json(self) -> bytes:
        # pydantic's serializer writes the JSON itself: the same bytes as
        # orjson.dumps(self.model_dump(mode="json")), without the dict in between (a third
        # of the time; tests/unit/shared/test_events.py holds them to the same bytes)
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        data = orjson.loads(raw)
        if "event_id" not in data:  # a received event must carry its id: inboxes dedupe by it
            raise ValueError("event without event_id")
        return cls.model_validate(data)


def topic_for(event_type: str) -> str:
    return _TOPIC_BY_PREFIX[event_type.split(".", 1)[0]]


class Event(BaseModel):
    """Base of every payload model. Subclasses set ``TYPE`` and ``VERSION``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def envelope(
        self, *, producer: str, occurred_at: datetime, ticket_id: str | None = None
    ) -> Envelope:
        return Envelope(
            type=self.TYPE,
            version=self.VERSION,
            occurred_at=occurred_at,
            ticket_id=ticket_id if ticket_id is not None else getattr(self, "ticket_id", None),
            producer=producer,
            trace_id=trace_id_var.get(),
            payload=self.model_dump(mode="json"),
        )


EVENT_TYPES: dict[str, type[Event]] = {}
# (type, old_version) → function turning that payload into the next version's payload
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event(cls: type[Event]) -> type[Event]:
    EVENT_TYPES[cls.TYPE] = cls
    return cls


class UnknownEvent(Exception):
    pass


def parse_payload(envelope: Envelope) -> Event:
    """The envelope's payload as its model, upcast from older versions."""
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise UnknownEvent(envelope.type)
    payload, version = dict(envelope.payload), envelope.version
    if version > model.VERSION:
        raise UnknownEvent(f"{envelope.type} v{version} is newer than this service knows")
    while version < model.VERSION:
        upcaster = UPCASTERS.get((envelope.type, version))
        if upcaster is None:
            raise UnknownEvent(f"no upcaster for {envelope.type} v{version}")
        payload = upcaster(payload)
        version += 1
    return model.model_validate(payload)


E = TypeVar("E", bound=Event)


def parse_payloads(envelopes: Sequence[Envelope], model: type[E]) -> list[E]:
    """The payloads of a run of events of one type (a set-based consumer's input)."""
    parsed = []
    for envelope in envelopes:
        event = parse_payload(envelope)
        if not isinstance(event, model):
            raise UnknownEvent(f"{envelope.type} is not {model.TYPE}")
        parsed.append(event)
    return parsed
