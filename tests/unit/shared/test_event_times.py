"""The times an event carries (``EventTime``): read as the same instants pydantic's
``AwareDatetime`` reads, and refused as it refuses them, but a time in UTC read as a
``datetime.timezone.utc`` time (any other offset a ``datetime.timezone``), not one of
pydantic's own ``TzInfo`` (each offset it is asked calls back into Python)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from pydantic_core import TzInfo

from shared.events import (
    EVENT_TYPES,
    DeadlineSet,
    Envelope,
    EnvelopeTime,
    EventTime,
    Reply,
    TicketRegistered,
    parse_payload,
    read,
)
from tests.unit.shared.event_examples import every_event_in_chinese

AWARE = TypeAdapter(AwareDatetime)
TIME = TypeAdapter(EventTime)
OPTIONAL = TypeAdapter(EventTime | None)
# an envelope's own time: read as an event's, the last one kept apart
ENVELOPE_TIME = TypeAdapter(EnvelopeTime)
BOTH = pytest.mark.parametrize("time", [TIME, ENVELOPE_TIME], ids=["event", "envelope"])


def _times(value: Any) -> list[datetime]:
    """The datetimes in a model's fields (nested models, lists and dicts too)."""
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, BaseModel):
        value = value.__dict__
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for v in value for t in _times(v)]
    return []


def test_every_events_utc_times_are_read_as_timezone_utc_and_written_back_byte_for_byte() -> None:
    examples = every_event_in_chinese()
    assert set(examples) == set(EVENT_TYPES)
    read_times = 0
    for kind, raw in examples.items():
        envelope = Envelope.from_json(raw)
        event = parse_payload(envelope)
        received = read(raw, EVENT_TYPES[kind])
        assert received is not None
        times = _times(envelope) + _times(event) + _times(received)
        assert all(t.tzinfo is UTC for t in times), kind
        read_times += len(times)
        assert envelope.to_json() == raw
        assert (
            Envelope(**{**envelope.__dict__, "payload": event.model_dump(mode="json")}).to_json()
            == raw
        )
        assert received.as_envelope().to_json() == raw
        assert event.model_dump_json().encode() == orjson.dumps(envelope.payload)
    assert read_times > 3 * len(EVENT_TYPES)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-06T08:00:00Z",
        "2026-12-06T08:00:00.123456Z",
        "2026-12-06T08:00:00.000001Z",
        "2026-12-06T08:00:00+00:00",
        "2026-12-06T08:00:00.5-00:00",
        "2026-12-06 08:00:00z",
        "2026-12-06T08:00Z",
        "2026-12-06T08:00:00.1234567Z",
        "2026-12-06T08:00:00,123456Z",
        "1796544000",
    ],
)
@BOTH
def test_a_time_in_utc_is_read_as_timezone_utc_at_pydantics_instant(
    text: str, time: TypeAdapter[datetime]
) -> None:
    raw = orjson.dumps(text) if not text.isdigit() else text.encode()
    expected = AWARE.validate_json(raw)
    for at in (time.validate_json(raw), time.validate_python(orjson.loads(raw))):
        assert at.tzinfo is UTC
        assert at == expected and at.replace(tzinfo=None) == expected.replace(tzinfo=None)
        assert time.dump_json(at) == AWARE.dump_json(expected)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-06T16:00:00+08:00",
        "2026-12-06T16:00:00.250000+08:00",
        "2026-12-06T03:30:00-04:30",
        "2026-12-06T08:00:00+0530",
        "2026-12-06T08:00:00.123456+14:00",
    ],
)
@BOTH
def test_a_time_at_another_offset_is_the_same_instant_at_a_fixed_offset(
    text: str, time: TypeAdapter[datetime]
) -> None:
    expected = AWARE.validate_json(orjson.dumps(text))
    at = time.validate_json(orjson.dumps(text))
    assert type(at.tzinfo) is timezone
    assert at.utcoffset() == expected.utcoffset()
    assert at == expected and at.replace(tzinfo=None) == expected.replace(tzinfo=None)
    assert time.dump_json(at) == AWARE.dump_json(expected)
    assert time.validate_python(text) == at


@BOTH
def test_a_datetime_given_is_kept_as_pydantic_keeps_it(time: TypeAdapter[datetime]) -> None:
    utc = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
    assert time.validate_python(utc) is utc
    shanghai = datetime(2026, 12, 6, 16, tzinfo=timezone(timedelta(hours=8), "CST"))
    assert time.validate_python(shanghai) is AWARE.validate_python(shanghai)
    decoded = AWARE.validate_json(b'"2026-12-06T16:00:00+08:00"')  # another model's time
    assert type(decoded.tzinfo) is TzInfo
    taken = time.validate_python(decoded)
    assert taken == decoded and taken.utcoffset() == timedelta(hours=8)
    assert type(taken.tzinfo) is timezone


REFUSED: list[Any] = [
    "2026-12-06T08:00:00",  # naive
    "2026-12-06T08:00:00.123456",
    "2026-12-06",
    "2026-02-30T08:00:00Z",
    "2026-12-06T24:00:00Z",
    "2026-12-06T23:59:60Z",
    "0000-12-06T08:00:00Z",
    "2026-W49-7T08:00:00Z",  # what fromisoformat takes and pydantic does not
    "2026-12-06T08Z",
    "20261206T080000Z",
    "2026-12-06X08:00:00Z",
    "2026-12-06T08:00:00.12345xZ",
    "２０２６-12-06T08:00:00Z",  # full-width digits
    "二〇二六年十二月六日",
    "",
    "Z",
    None,
    True,
    [],
    {},
    datetime(2026, 12, 6, 8),
]


@pytest.mark.parametrize("value", REFUSED, ids=repr)
@BOTH
def test_what_pydantic_refuses_is_refused_with_its_errors(
    value: Any, time: TypeAdapter[datetime]
) -> None:
    with pytest.raises(ValidationError) as expected:
        AWARE.validate_python(value)
    with pytest.raises(ValidationError) as refused:
        time.validate_python(value)
    assert refused.value.errors() == expected.value.errors()
    # the same lines but the title (the adapter's schema's name)
    assert str(refused.value).split("\n")[1:] == str(expected.value).split("\n")[1:]
    if not isinstance(value, datetime):
        raw = orjson.dumps(value)
        with pytest.raises(ValidationError) as expected:
            AWARE.validate_json(raw)
        with pytest.raises(ValidationError) as refused:
            time.validate_json(raw)
        assert refused.value.errors() == expected.value.errors()
    assert OPTIONAL.validate_python(None) is None


@BOTH
def test_text_of_the_written_shape_is_read_as_pydantic_reads_it_or_refused_alike(
    time: TypeAdapter[datetime],
) -> None:
    # the shape fromisoformat reads here (its characters at 4, 7, 10, 13, 16, 19 and the
    # last), each field's value drawn from around and beyond its bounds
    rng = random.Random(20261206)
    texts = {"9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "2028-02-29T12:00:00Z"}
    for _ in range(6000):
        year = rng.choice((0, 1, 1970, 2026, 2028, 2100, 9999, rng.randrange(10_000)))
        month, day = rng.randrange(14), rng.randrange(33)
        hour, minute, second = rng.randrange(26), rng.randrange(62), rng.randrange(62)
        fraction = rng.choice(("", f".{rng.randrange(10**6):06d}", f".{rng.randrange(10)}"))
        texts.add(
            f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"
        )
    taken = 0
    for text in sorted(texts):
        raw = orjson.dumps(text)
        try:
            expected = AWARE.validate_json(raw)
        except ValidationError as refused:
            with pytest.raises(ValidationError) as also:
                time.validate_json(raw)
            assert also.value.errors() == refused.errors(), text
            continue
        at = time.validate_json(raw)
        assert at.tzinfo is UTC, text
        assert at.replace(tzinfo=None) == expected.replace(tzinfo=None), text
        taken += 1
    assert len(texts) / 4 < taken < len(texts) * 3 / 4  # both taken and refused


class Expected(BaseModel):
    """``Reply`` as it was: its time an ``AwareDatetime``."""

    policy_basis: str
    progress: str
    result: str
    contacted_at: AwareDatetime
    process: str
    feedback: str


def test_an_api_refuses_a_bad_time_in_an_event_model_as_ever() -> None:
    app = FastAPI()

    @app.post("/reply")
    async def reply(body: Reply) -> dict[str, str]:
        assert body.contacted_at.tzinfo is UTC
        return {"contacted_at": body.contacted_at.isoformat()}

    @app.post("/expected")
    async def expected(body: Expected) -> None:
        return None

    client = TestClient(app)
    body = {
        "policy_basis": "《天津市12345政务服务便民热线管理办法》",
        "progress": "已联系",
        "result": "已解决",
        "process": "现场核查",
        "feedback": "满意",
    }
    ok = client.post("/reply", json=body | {"contacted_at": "2026-12-06T08:00:00Z"})
    assert ok.status_code == 200 and ok.json() == {"contacted_at": "2026-12-06T08:00:00+00:00"}
    for bad in ("2026-12-06T08:00:00", "2026-W49-7T08:00:00Z", "明天上午", None):
        refused = client.post("/reply", json=body | {"contacted_at": bad})
        assert refused.status_code == 422
        assert refused.json() == client.post("/expected", json=body | {"contacted_at": bad}).json()
    schema = app.openapi()["components"]["schemas"]
    assert (
        schema["Reply"]["properties"]["contacted_at"]
        == (schema["Expected"]["properties"]["contacted_at"])
    )


def test_an_event_times_json_schema_is_an_aware_datetimes() -> None:
    for mode in ("validation", "serialization"):
        assert TIME.json_schema(mode=mode) == AWARE.json_schema(mode=mode)  # type: ignore[arg-type]
    properties = DeadlineSet.model_json_schema()["properties"]
    assert properties["deadline"] == {"format": "date-time", "title": "Deadline", "type": "string"}


def test_an_event_made_in_python_keeps_its_utc_times_and_reads_back_alike() -> None:
    fields = parse_payload(Envelope.from_json(every_event_in_chinese()["ticket.registered"]))
    at = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
    event = TicketRegistered.of({**fields.__dict__, "registered_at": at})
    assert event.registered_at is at
    raw = event.envelope(producer="intake", occurred_at=at).to_json()
    again = parse_payload(Envelope.from_json(raw))
    assert again == event and again.registered_at.tzinfo is UTC  # type: ignore[attr-defined]


def test_a_runs_envelope_time_read_between_its_events_own_is_read_once() -> None:
    # an sla.deadline_set run as dispatch reads it: each envelope's time (the run's), then
    # its clock's start and deadline (the ticket's own); the run's time is read once
    now = datetime(2026, 12, 7, 9, 0, 1, 1234, tzinfo=UTC)
    run = []
    for i in range(4):
        start = datetime(2026, 12, 7, 9, 0, tzinfo=UTC) + timedelta(milliseconds=i)
        clock = DeadlineSet(
            ticket_id=f"12345-{i}",
            clock="dispatch",
            started_at=start,
            deadline=start + timedelta(hours=24),
            period="24h",
        )
        run.append(clock.envelope(producer="sla", occurred_at=now).to_json())
    received = [read(raw, DeadlineSet) for raw in run]
    envelopes = [Envelope.from_json(raw) for raw in run]
    for events in (received, envelopes):
        assert all(e is not None and e.occurred_at == now for e in events)
        assert all(e.occurred_at is events[0].occurred_at for e in events)  # type: ignore[union-attr]
    # a registration's own time, its envelope's, is the time read for its envelope
    registered = parse_payload(Envelope.from_json(every_event_in_chinese()["ticket.registered"]))
    at = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
    event = TicketRegistered.of({**registered.__dict__, "registered_at": at})
    got = read(event.envelope(producer="intake", occurred_at=at).to_json(), TicketRegistered)
    assert got is not None and got.payload.registered_at is got.occurred_at
