"""The envelope, the base of every event model, the registry and upcasting.

The JSON these produce is the contract between services (see docs/events.md). A consumer
reads an event with ``parse_payload``, or, set-based, is handed it read in one pass
(``Received``); an older version is upcast before it is used.
"""

from __future__ import annotations

import os
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from types import EllipsisType
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import TzInfo, core_schema

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


def _event_time(value: Any) -> datetime:
    """``value`` validated as pydantic validates an ``AwareDatetime`` (the same times taken,
    the same instants, the same errors), but a time given with a fixed offset (text, a
    number) is a datetime of ``datetime.timezone``'s (UTC's: ``timezone.utc`` itself), not of
    pydantic's own ``TzInfo``, whose every offset asked (each comparison, subtraction,
    ``astimezone``, a write to PostgreSQL) calls back into Python: ~0.3 us each. The text the
    events carry (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, as the envelope's JSON writes it) is read
    by ``datetime.fromisoformat``, which reads it as pydantic does (the same text as the last
    one read is that one's time: an envelope's time is often its payload's, a run's events
    share theirs); any other goes pydantic's way, its offset then made a ``timezone``. A
    datetime in UTC is taken as it is."""
    global _LAST_READ
    if type(value) is str:
        last = _LAST_READ  # one tuple read once: its text and time always belong together
        if value == last[0]:  # an event's time is often the one read just before
            return last[1]  # type: ignore[no-any-return]
        # only that text: fromisoformat takes forms pydantic refuses (week dates, ...)
        if value[4:20:3] in _WRITTEN and value[-1] == "Z":
            try:
                at = _from_text(value)
            except ValueError:
                pass  # refused as pydantic refuses it (below)
            else:
                _LAST_READ = value, at
                return at
    elif type(value) is datetime and value.tzinfo is UTC:
        return value
    at = _AWARE(value)  # what it refuses, refused with its errors (pydantic takes them up)
    if type(at.tzinfo) is TzInfo:
        return at.replace(tzinfo=timezone(at.utcoffset()))  # type: ignore[arg-type]
    return at


def _envelope_time(value: Any) -> datetime:
    """``_event_time`` of an envelope's own time (``occurred_at``), the last one read kept
    apart from its payload's: a run's events share their envelope's time (a producer stamps
    a run with one), which, read between each event's own times (an ``sla.deadline_set``'s
    start and deadline), is then that time again, not read again each event (~0.3 us). A
    text read is the last one read for the payload too (its time is often the envelope's)."""
    global _LAST_ENVELOPE_TIME, _LAST_READ
    if type(value) is str:
        last = _LAST_ENVELOPE_TIME  # one tuple read once: its text and time belong together
        if value == last[0]:
            return last[1]  # type: ignore[no-any-return]
        # ``_event_time``'s reading, inline (a call more would cost what is saved)
        if value[4:20:3] in _WRITTEN and value[-1] == "Z":
            try:
                at = _from_text(value)
            except ValueError:
                pass  # refused as pydantic refuses it (``_event_time``)
            else:
                _LAST_ENVELOPE_TIME = _LAST_READ = value, at
                return at
    return _event_time(value)


# the last text read by fromisoformat and its time (a datetime is immutable: shared alike);
# the characters at 4, 7, 10, 13, 16 and 19 of a time's text as the events write it
_LAST_READ: tuple[Any, Any] = (None, None)
_LAST_ENVELOPE_TIME: tuple[Any, Any] = (None, None)  # ``_envelope_time``'s
_WRITTEN = frozenset({"--T::Z", "--T::."})
_from_text = datetime.fromisoformat
_AWARE = TypeAdapter(AwareDatetime).validator.validate_python


class _EventTimeSchema:
    """``EventTime``'s schema: validated by ``_event_time``, written (JSON, JSON schema) as
    pydantic writes an ``AwareDatetime``."""

    validated: ClassVar[Callable[[Any], datetime]] = _event_time  # (read off the class)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validated, serialization=core_schema.simple_ser_schema("datetime")
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(core_schema.datetime_schema(tz_constraint="aware"))


class _EnvelopeTimeSchema(_EventTimeSchema):
    """``EnvelopeTime``'s schema: ``EventTime``'s, validated by ``_envelope_time``."""

    validated = _envelope_time


# an aware time in an event (``_event_time``): what the event models' times are declared as
EventTime = Annotated[datetime, _EventTimeSchema]
# an envelope's own time: an ``EventTime`` read apart from its payload's (``_envelope_time``)
EnvelopeTime = Annotated[datetime, _EnvelopeTimeSchema]


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_uuid(unix_ms: int | None = None) -> uuid.UUID:
    """A new event id: a UUID v7 (RFC 9562), whose first 48 bits are the Unix time in
    milliseconds and the rest random (74 bits). Ids made later sort after those made
    earlier (as UUIDs and as their hyphenated text), so the inboxes' and the outboxes'
    unique indexes on the event id take each new id at their right-hand end, on pages
    just written, instead of on any page at all (a random v4); the ids stay as unique.
    ``unix_ms`` is for tests (the current time otherwise)."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not _LOWS:
        # one system call for many ids (os.urandom for each was a quarter of an id's time),
        # their bits set once for all (a third of an id's time, one by one)
        block = os.urandom(10 * _LOWS_AT_ONCE)
        _LOWS.extend(
            int.from_bytes(block[i : i + 10], "big") & _RANDOM_BITS | _V7
            for i in range(0, len(block), 10)
        )
    made = _new(_UUID)  # ``_uuid7``'s, inline (a tenth of an id's time)
    _set(made, "int", (ms & _MS_BITS) << 80 | _LOWS.pop())
    _set(made, "is_safe", _UNKNOWN)
    return made


# the lowest 80 bits of ids not made yet (``_uuid7``'s ``low``); a forked child starts
# without its parent's, so the two never make the same ids
_LOWS: list[int] = []
_LOWS_AT_ONCE = 256
os.register_at_fork(after_in_child=_LOWS.clear)


def event_id_text(unix_ms: int | None = None) -> str:
    """A new event id (``event_uuid``) as its hyphenated text, ``str(event_uuid())``, made
    as text: what an outbox stores of an id made to be written (a third of the UUID's and
    its text's time). Its time's digits are made once a millisecond, its random part's
    text with the block of random bytes it comes from. ``unix_ms`` is for tests."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if ms != _TEXT_MS[0]:
        digits = "%012x" % (ms & _MS_BITS)
        _TEXT_MS[:] = [ms, f"{digits[:8]}-{digits[8:]}-"]
    if not _LOW_TEXTS:
        # 20 random hex digits an id: the first replaced by the version (7), the fifth's
        # two high bits by the variant's (0b10); 74 random bits stay, as in ``event_uuid``
        digits = os.urandom(10 * _LOWS_AT_ONCE).hex()
        _LOW_TEXTS.extend(
            f"7{digits[i + 1 : i + 4]}-{_VARIANT[digits[i + 4]]}{digits[i + 5 : i + 8]}-"
            f"{digits[i + 8 : i + 20]}"
            for i in range(0, len(digits), 20)
        )
    return _TEXT_MS[1] + _LOW_TEXTS.pop()  # type: ignore[no-any-return]


# ``event_id_text``'s: the millisecond and its text, the random parts' texts not used yet,
# a hex digit with its two high bits the variant's
_TEXT_MS: list[Any] = [None, ""]
_LOW_TEXTS: list[str] = []
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
os.register_at_fork(after_in_child=_LOW_TEXTS.clear)


def first_event_uuid(made_at: datetime) -> uuid.UUID:
    """The smallest event id (``event_uuid``) of ``made_at``'s millisecond: the ids made in
    an earlier millisecond sort before it (as UUIDs and as their hyphenated text), those
    made in that millisecond or later do not. An id that is not a v7 (its version nibble is
    not 7) says nothing of when it was made: it sorts before or after by its random bits."""
    return _uuid7((made_at - _UNIX_EPOCH) // timedelta(milliseconds=1), _V7)


def _uuid7(unix_ms: int, low: int) -> uuid.UUID:
    """The v7 UUID of ``unix_ms`` whose lowest 80 bits are ``low`` (its random bits, with
    the version's and the variant's set: ``_V7``)."""
    made = _new(_UUID)
    # what UUID(int=...) sets, without its checks: the number is 128 bits by construction
    _set(made, "int", (unix_ms & _MS_BITS) << 80 | low)
    _set(made, "is_safe", _UNKNOWN)
    return made


# of a v7's lowest 80 bits, those that are random (not the version nibble and the variant)
# and the version (7) and variant (0b10) set; the bits of its time (48)
_RANDOM_BITS, _V7 = 0x0FFF_3FFF_FFFF_FFFF_FFFF, 0x7000_8000_0000_0000_0000
_MS_BITS = 0xFFFF_FFFF_FFFF
_new, _set, _UUID, _UNKNOWN = object.__new__, object.__setattr__, uuid.UUID, uuid.SafeUUID.unknown


E = TypeVar("E", bound="Event")


class Header(BaseModel):
    """An envelope's fields but its payload: what the consumers read of every event
    (``Envelope``: the payload as JSON values; ``Received``: as its event model)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=event_uuid)
    type: str
    version: int = 1
    occurred_at: EnvelopeTime
    ticket_id: str | None = None
    producer: str
    trace_id: str | None = None

    @property
    def topic(self) -> str:
        return topic_for(self.type)

    @property
    def key(self) -> str:
        return self.ticket_id or str(self.event_id)

    @property
    def id_text(self) -> str:
        """Its id's hyphenated text (as the outboxes and inboxes store it)."""
        return str(self.event_id)

    @abstractmethod
    def as_envelope(self) -> Envelope:
        """This event as it travels: its payload as JSON values."""

    @abstractmethod
    def event(self) -> Event:
        """Its payload as its model (``parse_payload``: upcast from an older version)."""


class Envelope(Header):
    """What travels on the bus. ``payload`` is the event model's JSON."""

    payload: dict[str, Any]

    def as_envelope(self) -> Envelope:
        return self

    def event(self) -> Event:
        return parse_payload(self)

    def with_trace_id(self, trace_id: str | None) -> Envelope:
        """This envelope with another trace id."""
        return self.model_copy(update={"trace_id": trace_id})

    def to_json(self) -> bytes:
        # pydantic's serializer writes the JSON itself: the same bytes as
        # orjson.dumps(self.model_dump(mode="json")), without the dict in between (a third
        # of the time; tests/unit/shared/test_events.py holds them to the same bytes)
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """The envelope ``raw`` holds. pydantic-core reads the JSON straight into the model
        (a third less time than orjson's dict validated after). What it refuses, or reads
        without an ``event_id`` (the field's default would invent one), is read again the
        way it always was, so it is refused with the same reason. What it takes that orjson
        would not: ``NaN`` and ``Infinity`` (and a number too large for a double) become
        non-finite floats in the payload, as they do when a payload model is made in Python,
        and an integer beyond 64 bits stays an integer (orjson reads a rounded float)."""
        try:
            envelope = cls.__pydantic_validator__.validate_json(raw)
        except ValueError:
            pass
        else:
            if "event_id" in envelope.__pydantic_fields_set__:
                return envelope  # type: ignore[no-any-return]
        return cls._from_json_strictly(raw)

    @classmethod
    def _from_json_strictly(cls, raw: bytes | str) -> Envelope:
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

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Self:
        """``cls(**fields)``: validated from the mapping as it is (spreading it into keyword
        arguments to be gathered again costs two fifths more); it may hold more than the
        model takes (ignored)."""
        made: Self = cls.__pydantic_validator__.validate_python(fields)
        return made

    def envelope(
        self, *, producer: str, occurred_at: datetime, ticket_id: str | None = None
    ) -> Envelope:
        """This event in a new envelope. Its payload is this model's JSON dump (the model
        was validated when it was made: a dict of JSON values, keyed by its fields' names),
        so the envelope is not validated all over again: when every other field is of its
        plain type (``_plain``), the envelope is made as validating it would make it (the
        same fields, the same objects; ``tests/unit/shared/test_events.py`` holds them to the
        same bytes). Anything else is validated, and refused, as ever."""
        if ticket_id is None:
            ticket_id = getattr(self, "ticket_id", None)
        trace_id = trace_id_var.get()
        # what model_dump(mode="json") calls, without its keyword arguments' cost
        payload = self.__pydantic_serializer__.to_python(self, mode="json")
        kind, version = self.TYPE, self.VERSION
        if _plain(kind, version, occurred_at, ticket_id, producer, trace_id):
            return _validated(
                {
                    "event_id": event_uuid(),
                    "type": kind,
                    "version": version,
                    "occurred_at": occurred_at,
                    "ticket_id": ticket_id,
                    "producer": producer,
                    "trace_id": trace_id,
                    "payload": payload,
                }
            )
        return Envelope(
            type=kind,
            version=version,
            occurred_at=occurred_at,
            ticket_id=ticket_id,
            producer=producer,
            trace_id=trace_id,
            payload=payload,
        )

    def outgoing(
        self,
        *,
        producer: str,
        occurred_at: datetime,
        ticket_id: str | None = None,
        trace_id: str | None | EllipsisType = ...,
    ) -> Outgoing:
        """This event on its way out (to an outbox): ``envelope``'s fields and JSON, written
        once, straight from this model (``Outgoing``). Values that are not of their plain
        type (``_plain``) are validated, and refused, as ``envelope`` does. ``trace_id``:
        the one in force unless given (a set-based run's events each carry their ticket's,
        given without setting it in force for each)."""
        if ticket_id is None:
            ticket_id = getattr(self, "ticket_id", None)
        if trace_id is ...:
            trace_id = trace_id_var.get()
        if not _plain_header(occurred_at, ticket_id, producer, trace_id):
            given = _Given(
                type=self.TYPE,
                version=self.VERSION,
                occurred_at=occurred_at,
                ticket_id=ticket_id,
                producer=producer,
                trace_id=trace_id,
                payload={},
            )
            occurred_at, ticket_id = given.occurred_at, given.ticket_id
            producer, trace_id = given.producer, given.trace_id
        return Outgoing(self, event_id_text(), occurred_at, ticket_id, producer, trace_id)

    @classmethod
    def outgoing_run(
        cls,
        fields: Sequence[Mapping[str, Any]],
        *,
        producer: str,
        occurred_at: datetime,
        trace_ids: Sequence[str | None],
    ) -> list[Outgoing]:
        """``cls.of(f).outgoing(producer=…, occurred_at=…, trace_id=t)`` for each of a
        set-based run's ``fields`` and its event's ``trace_ids``: the same events (the same
        envelope bytes but for their new ids), the models validated in one call (a list's
        validator) and the shared header's values checked once, not once an event."""
        models: list[Event] = _run_validator(cls).validate_python(fields)
        ticket_ids = [getattr(m, "ticket_id", None) for m in models]
        if (
            _plain_header(occurred_at, None, producer, None)
            and all(type(i) is str for i in ticket_ids)
            and all(t is None or type(t) is str for t in trace_ids)
        ):
            return Outgoing.run(models, occurred_at, ticket_ids, producer, trace_ids)
        # anything not of its plain type goes the one-by-one way (validated, or refused)
        return [
            m.outgoing(producer=producer, occurred_at=occurred_at, trace_id=t)
            for m, t in zip(models, trace_ids, strict=True)
        ]

    @classmethod
    def outgoing_written_run(
        cls,
        payloads: Sequence[bytes],
        *,
        producer: str,
        occurred_at: datetime,
        ticket_ids: Sequence[str],
        trace_ids: Sequence[str | None],
    ) -> list[Outgoing]:
        """``outgoing_run``'s events for a run whose payloads' JSON their producer wrote
        itself, each with its ticket id (the payload's) and trace id: the same envelopes,
        without the fields validated into models to be written again (~2 us an event). The
        producer answers for each payload being the bytes ``cls``'s model writes of valid
        fields (a test of its writer should hold it to the model's). A model is read from
        its payload only when asked for (``Outgoing.event``); a header value not of its
        plain type goes the one-by-one way, from the model read (validated, or refused)."""
        if (
            _plain_header(occurred_at, None, producer, None)
            and all(type(i) is str for i in ticket_ids)
            and all(t is None or type(t) is str for t in trace_ids)
        ):
            return Outgoing.run(payloads, occurred_at, ticket_ids, producer, trace_ids, cls)
        return [
            cls.model_validate_json(p).outgoing(
                producer=producer, occurred_at=occurred_at, ticket_id=i, trace_id=t
            )
            for p, i, t in zip(payloads, ticket_ids, trace_ids, strict=True)
        ]

    @classmethod
    def outgoing_rows_run(
        cls,
        rows: Sequence[dict[str, Any]],
        *,
        written: Callable[[dict[str, Any]], bytes | None],
        fields: Callable[[dict[str, Any]], dict[str, Any]],
        producer: str,
        occurred_at: datetime,
        trace_ids: Sequence[str | None],
    ) -> list[Outgoing]:
        """The events of a run of rows (each with its ``ticket_id``), each under its trace
        id: every payload written by its producer (``written``: the bytes the model writes
        of ``fields(row)``, or None where it cannot say so), then sent as written
        (``outgoing_written_run``); if one is None, the whole run's ``fields`` go through the
        model (``outgoing_run``). The same envelopes either way."""
        payloads = [written(row) for row in rows]
        if None in payloads:
            return cls.outgoing_run(
                [fields(row) for row in rows],
                producer=producer,
                occurred_at=occurred_at,
                trace_ids=trace_ids,
            )
        return cls.outgoing_written_run(
            payloads,  # type: ignore[arg-type]  # none is None
            producer=producer,
            occurred_at=occurred_at,
            ticket_ids=[row["ticket_id"] for row in rows],
            trace_ids=trace_ids,
        )


@cache
def _run_validator(cls: type[Event]) -> TypeAdapter[list[Any]]:
    """The validator of a list of ``cls``'s models (``Event.outgoing_run``)."""
    return TypeAdapter(list[cls])  # type: ignore[valid-type]


_Model = type["Event"]  # (an outgoing event's own ``type`` is a property)


class Outgoing:
    """An event on its way out (``Event.outgoing``): its model, its envelope's other fields
    and the envelope's JSON (``to_json``): the bytes ``Envelope.to_json`` writes of the
    envelope ``Event.envelope`` makes, written once, straight from the model (not dumped to
    a dict to be written from that, nor held in an ``Envelope``). What writes it to an
    outbox reads ``id_text``, ``topic``, ``key`` and ``to_json()``; its ``payload`` (the
    dict) and ``event_id`` (the UUID) are made when asked for."""

    __slots__ = (
        "event",
        "id_text",
        "occurred_at",
        "ticket_id",
        "producer",
        "trace_id",
        "topic",
        "raw",
    )

    def __init__(
        self,
        event: Event,
        id_text: str,
        occurred_at: datetime,
        ticket_id: str | None,
        producer: str,
        trace_id: str | None,
    ) -> None:
        self.event = event
        self.id_text = id_text
        self.occurred_at = occurred_at
        self.ticket_id = ticket_id
        self.producer = producer
        self.trace_id = trace_id
        known = _HEADS.get(type(event))
        if known is None:
            known = _HEADS[type(event)] = _head(event)
        head, self.topic = known
        dumps = orjson.dumps  # the same bytes as pydantic's for any str (a test reads them all)
        self.raw = b"".join(
            (
                b'{"event_id":"',
                id_text.encode(),
                head,
                _time_json(occurred_at),
                b',"ticket_id":',
                dumps(ticket_id),
                b',"producer":',
                dumps(producer),
                b',"trace_id":',
                dumps(trace_id),
                b',"payload":',
                event.__pydantic_serializer__.to_json(event),
                b"}",
            )
        )

    @classmethod
    def run(
        cls,
        events: Sequence[Event] | Sequence[bytes],
        occurred_at: datetime,
        ticket_ids: Sequence[str | None],
        producer: str,
        trace_ids: Sequence[str | None],
        written: _Model | None = None,
    ) -> list[Outgoing]:
        """``Outgoing(e, event_id_text(), occurred_at, i, producer, t)`` for each of a run's
        ``events`` (of one model) with its ticket and trace ids: their shared header's bytes
        (type, version, time, producer) written once for the run, not once an event.
        ``written``: the model of a run given as its payloads' JSON (``events``' bytes,
        ``Event.outgoing_written_run``), each read as the model when asked for."""
        if not events:
            return []
        model: _Model = written or type(events[0])  # type: ignore[assignment]
        known = _HEADS.get(model)
        if known is None:
            known = _HEADS[model] = _head(model)
        head, topic = known
        dumps = orjson.dumps
        to_ticket = head + _time_json(occurred_at) + b',"ticket_id":'
        to_trace = b',"producer":' + dumps(producer) + b',"trace_id":'
        to_json = model.__pydantic_serializer__.to_json
        new: Callable[[type[Outgoing]], Any] = object.__new__
        out: list[Outgoing] = []
        for event, ticket_id, trace_id in zip(events, ticket_ids, trace_ids, strict=True):
            payload: bytes
            if written is not None:
                payload = event  # type: ignore[assignment]
                made = new(_Written)
                made.model, made.payload_json = written, payload
            elif type(event) is not model:  # not of the run's model: its own header
                out.append(cls(event, event_id_text(), occurred_at, ticket_id, producer, trace_id))  # type: ignore[arg-type]
                continue
            else:
                made = new(cls)
                made.event = event  # type: ignore[assignment]
                payload = to_json(event)
            made.id_text = id_text = event_id_text()
            made.occurred_at = occurred_at
            made.ticket_id = ticket_id
            made.producer = producer
            made.trace_id = trace_id
            made.topic = topic
            made.raw = b"".join(
                (
                    b'{"event_id":"',
                    id_text.encode(),
                    to_ticket,
                    dumps(ticket_id),
                    to_trace,
                    dumps(trace_id),
                    b',"payload":',
                    payload,
                    b"}",
                )
            )
            out.append(made)
        return out

    @property
    def type(self) -> str:
        return self.event.TYPE

    @property
    def version(self) -> int:
        return self.event.VERSION

    @property
    def key(self) -> str:
        return self.ticket_id or self.id_text

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.UUID(self.id_text)

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as JSON values (``Envelope.payload``: the model's dump)."""
        payload: dict[str, Any] = self.event.__pydantic_serializer__.to_python(
            self.event, mode="json"
        )
        return payload

    def to_json(self) -> bytes:
        return self.raw

    def with_trace_id(self, trace_id: str | None) -> Outgoing:
        """This event with another trace id (the same id)."""
        return Outgoing(
            self.event, self.id_text, self.occurred_at, self.ticket_id, self.producer, trace_id
        )

    def as_envelope(self) -> Envelope:
        """Its ``Envelope`` (read from its JSON, as a consumer would read it)."""
        return Envelope.from_json(self.raw)

    def __repr__(self) -> str:
        return f"Outgoing({self.raw.decode()})"


class _Written(Outgoing):
    """An event on its way out whose payload's JSON its producer wrote
    (``Event.outgoing_written_run``): its model is read from that JSON when asked for."""

    __slots__ = ("model", "payload_json")

    model: _Model
    payload_json: bytes

    @property
    def event(self) -> Event:  # type: ignore[override]  # the payload's, when asked for
        return self.model.model_validate_json(self.payload_json)

    @property
    def type(self) -> str:
        return self.model.TYPE

    @property
    def version(self) -> int:
        return self.model.VERSION


class _Given(Envelope):
    """An envelope made only to validate (and refuse, as ``Envelope`` would) the values
    ``Event.outgoing`` is given that are not of their plain type."""


def _head(event: Event | type[Event]) -> tuple[bytes, str]:
    """The JSON between an envelope's id and its time for events of ``event``'s model (or
    of the model ``event``; its type and version, validated as an envelope's), and their
    topic."""
    given = _Given(
        type=event.TYPE, version=event.VERSION, occurred_at=_UNIX_EPOCH, producer="", payload={}
    )
    head = b'","type":%b,"version":%d,"occurred_at":' % (orjson.dumps(given.type), given.version)
    return head, topic_for(given.type)


_HEADS: dict[type[Event], tuple[bytes, str]] = {}


def _time_json(at: datetime) -> bytes:
    """``at`` as an envelope's JSON writes it; the last one kept (a batch's events share
    their time)."""
    if at is not _LAST_TIME[0]:
        _LAST_TIME[:] = [at, _TIME_TO_JSON(at)]
    return _LAST_TIME[1]  # type: ignore[no-any-return]


_LAST_TIME: list[Any] = [None, b""]


def orjson_time(at: datetime) -> datetime | orjson.Fragment:
    """``at`` for ``orjson.dumps(..., option=OPT_UTC_Z)`` to write as a model (pydantic)
    writes it: a time in UTC (the services' clocks') as itself (orjson writes it alike,
    ~0.3 us less), any other as pydantic writes it (orjson rounds an offset's seconds)."""
    if at.tzinfo is UTC and type(at) is datetime:
        return at
    return orjson.Fragment(_TIME_TO_JSON(at))


def _plain_header(occurred_at: Any, ticket_id: Any, producer: Any, trace_id: Any) -> bool:
    """``_plain`` of an event's envelope's own values (its model's type and version are read
    once, ``_head``); the time last written (``_time_json``) is known to be."""
    return (
        type(producer) is str
        and (ticket_id is None or type(ticket_id) is str)
        and (trace_id is None or type(trace_id) is str)
        and type(occurred_at) is datetime
        and (
            occurred_at is _LAST_TIME[0]
            or (occurred_at.tzinfo is not None and occurred_at.utcoffset() is not None)
        )
    )


def _plain(
    kind: Any,
    version: Any,
    occurred_at: Any,
    ticket_id: Any,
    producer: Any,
    trace_id: Any,
) -> bool:
    """Whether validating an envelope of these would keep each as it is: a str, an int, an
    aware datetime, a str or None (their exact types, not subclasses)."""
    return (
        type(kind) is str
        and type(version) is int
        and _plain_header(occurred_at, ticket_id, producer, trace_id)
    )


# the fields ``Event.envelope`` gives an envelope (its id is the default's)
_GIVEN = frozenset({"type", "version", "occurred_at", "ticket_id", "producer", "trace_id"})
_GIVEN |= {"payload"}


def _validated(fields: dict[str, Any]) -> Envelope:
    """An envelope of ``fields``, which are as validating them would leave them: the state
    pydantic's ``model_construct`` sets (a tenth of its time, which is generic)."""
    envelope = Envelope.__new__(Envelope)
    object.__setattr__(envelope, "__dict__", fields)
    object.__setattr__(envelope, "__pydantic_fields_set__", set(_GIVEN))
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


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
    payload, version = envelope.payload, envelope.version
    if version > model.VERSION:
        raise UnknownEvent(f"{envelope.type} v{version} is newer than this service knows")
    if version < model.VERSION:
        payload = dict(payload)  # an upcaster may change what it is given
    while version < model.VERSION:
        upcaster = UPCASTERS.get((envelope.type, version))
        if upcaster is None:
            raise UnknownEvent(f"no upcaster for {envelope.type} v{version}")
        payload = upcaster(payload)
        version += 1
    # what model_validate calls, without its keyword arguments' cost (a fifth of its time)
    return model.__pydantic_validator__.validate_python(payload)  # type: ignore[no-any-return]


class Received(Header, Generic[E]):
    """An event read off the bus in one pass (``read``): its envelope's header and its
    payload as its event model (of the model's version), without the payload's dict that
    ``Envelope.from_json`` and ``parse_payload`` make and read in two."""

    event_id: uuid.UUID  # no default: a received event carries its id (inboxes dedupe by it)
    payload: E

    def as_envelope(self) -> Envelope:
        """Its envelope, the payload the model's dump (as its producer wrote it, but for
        fields this version does not know, which the model ignores)."""
        header = {name: getattr(self, name) for name in Header.model_fields}
        return Envelope(**header, payload=self.payload.model_dump(mode="json"))

    def event(self) -> E:
        return self.payload


class View(Event):
    """A consumer's narrower reading of an event type (``FULL``, its model): the fields of
    it that the consumer reads, declared as ``FULL`` declares them (validated alike); the
    others are passed over as the bus reads the event (``reader``: a registration's text
    and address, most of its bytes). Not an event type of its own: it has ``FULL``'s type
    and version, and the event it was read from stays what it was (``ReceivedView``)."""

    FULL: ClassVar[type[Event]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.TYPE, cls.VERSION = cls.FULL.TYPE, cls.FULL.VERSION


class ReceivedView(Received[E], Generic[E]):
    """``Received`` of a ``View``: the bytes it was read from kept, so that its envelope
    (a one-by-one handler's, a dead letter's) is the whole event as it was received, not
    the view's fields alone."""

    __slots__ = ("_raw",)

    def as_envelope(self) -> Envelope:
        return Envelope.from_json(self._raw)  # type: ignore[attr-defined]


@cache
def reader(model: type[E]) -> Callable[[bytes], Received[E] | None]:
    """``read`` of ``model``, its validator, type and version looked up once: a consumer
    reads each event of a type it reads as its model with that type's reader
    (``shared.bus.decode``). A ``View`` keeps the bytes it was read from."""
    validate = received_model(model).__pydantic_validator__.validate_json
    kind, version = model.TYPE, model.VERSION
    view = issubclass(model, View)

    def read_one(raw: bytes) -> Received[E] | None:
        try:
            received: Received[E] = validate(raw)
        except Exception:  # noqa: BLE001 - read again the way it always was
            return None
        if received.type != kind or received.version != version:
            return None
        if view:
            _set(received, "_raw", raw)
        return received

    return read_one


def read(raw: bytes, model: type[E]) -> Received[E] | None:
    """``raw`` as an event of ``model`` (its type, of the model's version), in one pass; or
    None, when it is not one as it stands: another type or version, or anything
    ``Envelope.from_json`` would refuse or read another way (no ``event_id``). The caller
    then reads it as an ``Envelope``: refused for the reason it always was, or upcast."""
    return reader(model)(raw)


@cache
def received_model(model: type[E]) -> type[Received[E]]:
    """``Received`` of ``model`` (made once: pydantic's ``Received[model]`` looks it up;
    ``ReceivedView`` of a ``View``)."""
    if issubclass(model, View):
        return ReceivedView[model]  # type: ignore[valid-type]
    return Received[model]  # type: ignore[valid-type]


def parse_payloads(batch: Sequence[Header], model: type[E]) -> list[E]:
    """The payloads of a run of events of one type as their model (a set-based consumer's
    input): read with their envelopes (``Received``), or now (an ``Envelope``: upcast).
    ``model`` a ``View``: an event read whole (as its ``FULL`` model) is taken as the view."""
    found = [header.event() for header in batch]
    for i, event in enumerate(found):
        if not isinstance(event, model):
            if issubclass(model, View) and isinstance(event, model.FULL):
                found[i] = model.of(event.__dict__)
                continue
            raise UnknownEvent(f"{event.TYPE} is not {model.TYPE}")
    return found  # type: ignore[return-value]  # each is a model


# how an envelope's JSON writes its time (``_time_json``)
_TIME_TO_JSON = TypeAdapter(AwareDatetime).serializer.to_json
