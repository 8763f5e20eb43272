import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.events import (
    EVENT_TYPES,
    UPCASTERS,
    Envelope,
    Event,
    Header,
    Received,
    TicketDispatched,
    TicketRegistered,
    UnknownEvent,
    parse_payload,
    parse_payloads,
    read,
    topic_for,
)
from tests.forking import made_in_a_forked_child
from tests.unit.shared.event_examples import every_event_in_chinese

REGISTERED = TicketRegistered(
    ticket_id="TJ20260115000123",
    channel="phone",
    type="complaint",
    urgency="livelihood",
    matter_code="HEAT-001",
    district="120101",
    address="和平区南京路100号",
    content="家里暖气不热，室温只有14度",
    registered_at=datetime(2026, 1, 15, 1, 2, 3, tzinfo=UTC),
)

# what an event's envelope is refused: a naive time, not a time, no producer, a ticket id
# that is not text
NOT_AN_ENVELOPES: list[dict[str, Any]] = [
    {"producer": "intake", "occurred_at": datetime(2026, 1, 15, 1, 2, 3)},
    {"producer": "intake", "occurred_at": "2026-01-15 不是时间"},
    {"producer": None, "occurred_at": REGISTERED.registered_at},
    {"producer": "intake", "occurred_at": REGISTERED.registered_at, "ticket_id": 123},
]


def test_event_ids_are_uuid7_ordered_by_their_millisecond() -> None:
    """Event ids are time-ordered (UUID v7): the inboxes' and outboxes' indexes on them take
    new ids at their end. Ids of a later millisecond sort after every id of an earlier one,
    as UUIDs and as the text the inboxes store; within one millisecond they are random."""
    import uuid

    from shared.events.base import event_uuid

    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    assert envelope.event_id.version == 7
    assert envelope.event_id.variant == uuid.RFC_4122
    ms = 1_780_000_000_000
    earlier = [event_uuid(ms) for _ in range(200)]
    later = [event_uuid(ms + 1) for _ in range(200)]
    assert len(set(earlier + later)) == 400
    assert max(earlier) < min(later)
    assert max(map(str, earlier)) < min(map(str, later))
    assert all(u.version == 7 and int(u.hex[:12], 16) == ms for u in earlier)


def test_the_first_event_id_of_a_millisecond_sorts_after_every_id_made_before_it() -> None:
    """The inbox's pruner cuts at this id: what was made in an earlier millisecond goes,
    what was made in the cutoff's millisecond or later stays."""
    from datetime import UTC, datetime, timedelta

    from shared.events.base import event_uuid, first_event_uuid

    ms = 1_780_000_000_000
    first = first_event_uuid(datetime.fromtimestamp(ms / 1000, UTC) + timedelta(microseconds=999))
    assert first.version == 7 and int(first.hex[:12], 16) == ms
    for _ in range(200):
        before, then = event_uuid(ms - 1), event_uuid(ms)
        assert before < first <= then
        assert str(before) < str(first) <= str(then)


def test_event_ids_are_uuids_like_any_other() -> None:
    """An id made without ``UUID``'s constructor is the UUID its text reads as: equal,
    hashed, ordered, printed, copied and pickled alike, its 74 random bits each set in some
    id and clear in another; the first id of a millisecond is all zeros but the time, the
    version and the variant."""
    import copy
    import pickle
    import uuid

    from shared.events.base import event_uuid, first_event_uuid

    ids = [event_uuid() for _ in range(600)]
    for made in ids[:50]:
        again = uuid.UUID(str(made))
        assert made == again and hash(made) == hash(again) and made.int == again.int
        assert made.version == 7 and made.variant == uuid.RFC_4122
        assert made.is_safe is uuid.SafeUUID.unknown
        assert pickle.loads(pickle.dumps(made)) == made == copy.deepcopy(made)
    random_bits = (1 << 74) - 1
    ones = zeros = 0
    for made in ids:
        low = made.int & (1 << 80) - 1
        bits = (low >> 64 & 0xFFF) << 62 | low & (1 << 62) - 1
        ones, zeros = ones | bits, zeros | ~bits & random_bits
    assert ones == zeros == random_bits
    ms = 1_780_000_000_000
    first = first_event_uuid(datetime.fromtimestamp(ms / 1000, UTC))
    assert first == uuid.UUID(int=ms << 80 | 0x7 << 76 | 0b10 << 62)


def test_event_ids_made_as_text_are_the_text_of_such_uuids() -> None:
    """``event_id_text``: the text of a UUID v7 of the millisecond, its 74 random bits each
    set in some id and clear in another; a later millisecond's sort after an earlier's."""
    import uuid

    from shared.events.base import event_id_text, event_uuid

    ms = 1_780_000_000_000
    texts = [event_id_text(ms) for _ in range(600)]
    assert len(set(texts)) == 600
    random_bits = (1 << 74) - 1
    ones = zeros = 0
    for text in texts:
        made = uuid.UUID(text)
        assert str(made) == text
        assert made.version == 7 and made.variant == uuid.RFC_4122
        assert made.int >> 80 == ms
        low = made.int & (1 << 80) - 1
        bits = (low >> 64 & 0xFFF) << 62 | low & (1 << 62) - 1
        ones, zeros = ones | bits, zeros | ~bits & random_bits
    assert ones == zeros == random_bits
    later = [event_id_text(ms + 1) for _ in range(200)]
    assert max(texts) < min(later) < str(event_uuid(ms + 2))
    now = time.time_ns() // 1_000_000
    assert now <= uuid.UUID(event_id_text()).int >> 80 <= time.time_ns() // 1_000_000


def test_a_forked_process_makes_ids_of_its_own() -> None:
    """Random bits are read many ids at a time; a child forked with some of them unused
    must not make the ids its parent makes next."""
    from shared.events.base import event_id_text, event_uuid

    ms = 1_780_000_000_000
    # the parent now holds random bits not used yet (as ids and as ids' texts)
    event_uuid(ms), event_id_text(ms)
    childs = made_in_a_forked_child(
        lambda: [str(event_uuid(ms)) for _ in range(20)] + [event_id_text(ms) for _ in range(20)]
    )
    assert len(childs) == 40
    assert not childs & {str(event_uuid(ms)) for _ in range(20)}
    assert not childs & {event_id_text(ms) for _ in range(20)}


def test_envelope_round_trips_through_json_with_chinese_text() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    raw = envelope.to_json()
    assert "暖气不热".encode() in raw  # UTF-8 on the wire, not \u escapes
    again = Envelope.from_json(raw)
    assert again == envelope
    assert parse_payload(again) == REGISTERED


def test_an_envelopes_json_is_the_contracts_bytes_compact_utf8_in_field_order() -> None:
    """The bytes ``to_json`` writes are what the outbox stores and the relay sends as they
    are (``shared.bus.decode`` reads the type at its place at the start): compact, UTF-8,
    fields in the envelope's order, a UTC time with Z, the same as orjson's of the dump."""
    import orjson

    payload = {
        "text": '暖气 "不热"\\\n\t\x01\x7f\u2028 😀',
        "numbers": [0.1, 1e16, 1e-7, -0.0, 5e-324, 1e22, 2**63 - 1, -(2**63), 100.0],
        "nested": {"a": [True, False, None, {}], "b": []},
    }
    envelope = Envelope(
        event_id="5b0f6d1e-2f0a-4c52-9a57-3c1d2e0f9a11",
        type="ticket.registered",
        occurred_at=datetime(2026, 1, 15, 1, 2, 3, 4000, tzinfo=UTC),
        ticket_id="TJ1",
        producer="intake",
        trace_id="t1",
        payload=payload,
    )
    raw = envelope.to_json()
    assert raw == orjson.dumps(envelope.model_dump(mode="json"))
    assert raw.startswith(
        b'{"event_id":"5b0f6d1e-2f0a-4c52-9a57-3c1d2e0f9a11","type":"ticket.registered",'
        b'"version":1,"occurred_at":"2026-01-15T01:02:03.004000Z","ticket_id":"TJ1",'
        b'"producer":"intake","trace_id":"t1","payload":{"text":"'
    )
    assert "暖气".encode() in raw and "😀".encode() in raw
    assert Envelope.from_json(raw) == envelope
    # fields without a value are written as null, not left out
    bare = envelope.model_copy(update={"ticket_id": None, "trace_id": None, "payload": {}})
    assert bare.to_json() == orjson.dumps(bare.model_dump(mode="json"))
    assert b'"ticket_id":null,"producer":"intake","trace_id":null,"payload":{}}' in bare.to_json()


def test_envelope_is_keyed_by_ticket_and_routed_by_type_prefix() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    assert envelope.key == "TJ20260115000123"
    assert envelope.topic == "hotline.tickets"
    assert topic_for("sla.overdue") == "hotline.sla"
    assert topic_for("monitor.hotspot") == "hotline.evaluation"


def test_every_event_type_has_a_topic() -> None:
    for event_type in EVENT_TYPES:
        assert topic_for(event_type).startswith("hotline.")


def test_an_older_version_is_upcast_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    old = envelope.model_copy(
        update={
            "version": 0,
            "payload": {k: v for k, v in envelope.payload.items() if k != "address"}
            | {"addr": "旧字段"},
        }
    )
    monkeypatch.setitem(
        UPCASTERS,
        ("ticket.registered", 0),
        lambda p: {**{k: v for k, v in p.items() if k != "addr"}, "address": p["addr"]},
    )
    event = parse_payload(old)
    assert isinstance(event, TicketRegistered)
    assert event.address == "旧字段"


def test_an_upcaster_that_changes_its_input_leaves_the_envelope_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    old = envelope.model_copy(update={"version": 0, "payload": dict(envelope.payload)})

    def in_place(payload: dict[str, Any]) -> dict[str, Any]:
        payload["content"] = "升级后"
        return payload

    monkeypatch.setitem(UPCASTERS, ("ticket.registered", 0), in_place)
    assert parse_payload(old).content == "升级后"  # type: ignore[attr-defined]
    assert old.payload == envelope.payload  # the envelope another consumer reads is intact


def test_a_newer_version_than_known_is_refused_not_misread() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    with pytest.raises(UnknownEvent):
        parse_payload(envelope.model_copy(update={"version": 2}))


def _as_validated(envelope: Envelope) -> Envelope:
    """The envelope ``Event.envelope`` made before, validating every field (its payload
    the model's dump), with the same id."""
    return Envelope(**{name: getattr(envelope, name) for name in Envelope.model_fields})


def _chinese_events() -> list[tuple[Event, dict[str, Any]]]:
    from zoneinfo import ZoneInfo

    from shared.events import CallEnded, DeadlineSet, TicketDispatched, UnitStaffPublished
    from shared.events.catalog import StaffContact

    shanghai = datetime(2026, 1, 15, 9, 2, 3, 456789, tzinfo=ZoneInfo("Asia/Shanghai"))
    return [
        (REGISTERED, {"producer": "intake", "occurred_at": REGISTERED.registered_at}),
        (
            TicketDispatched(
                ticket_id="TJ20260115000123",
                unit_id="河西区供热办",
                matter_code="HEAT-001",
                district="120103",
                type="complaint",
                urgency="livelihood",
                dispatched_at=shanghai,
                co_unit_ids=["和平区住建委", "南开区街道办"],
            ),
            {"producer": "dispatch", "occurred_at": shanghai},
        ),
        (
            DeadlineSet(
                ticket_id="TJ20260115000123",
                clock="acceptance",
                unit_id="城市供水",
                started_at=shanghai,
                deadline=datetime(2026, 1, 15, 2, 0, tzinfo=UTC),
                period="30m",
            ),
            {"producer": "sla", "occurred_at": shanghai, "ticket_id": "TJ另一个"},
        ),
        (
            UnitStaffPublished(
                unit_id="city-water",
                staff=[StaffContact(username="zhangwei", name="张伟", duties=["受理", "办理"])],
            ),
            {"producer": "catalog", "occurred_at": REGISTERED.registered_at},
        ),
        (
            CallEnded(call_id="呼叫-1", account_id="ivr", started_at=shanghai, ended_at=shanghai),
            {"producer": "channels", "occurred_at": shanghai},
        ),
    ]


def test_an_events_envelope_is_the_validated_envelope_byte_for_byte() -> None:
    """``Event.envelope`` makes the envelope without validating it all over again: the same
    fields, objects and bytes as the envelope validated from the same values, for events in
    Chinese, times in Shanghai and in UTC, a ticket id given or the event's own or none,
    with a trace id and without."""
    from shared.logging import trace_id_var

    for trace in (None, "trace-第1号"):
        token = trace_id_var.set(trace)
        try:
            for event, how in _chinese_events():
                made = event.envelope(**how)
                validated = _as_validated(made)
                assert made.to_json() == validated.to_json()
                assert made == validated and repr(made) == repr(validated)
                assert made.model_dump() == validated.model_dump()
                assert made.__pydantic_fields_set__ == validated.__pydantic_fields_set__ - {
                    "event_id"
                }
                assert made.trace_id == trace
                assert made.payload == event.model_dump(mode="json")
                assert "\\u" not in made.to_json().decode()  # UTF-8, not escapes
                assert Envelope.from_json(made.to_json()) == made
                assert parse_payload(made) == event
                assert made.model_copy(update={"version": 2}).version == 2
        finally:
            trace_id_var.reset(token)


def test_an_events_envelope_validates_only_what_is_not_of_its_plain_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The payload comes from a validated model: an envelope of plain values is not
    validated again; one of anything else is, and is refused with the same errors."""
    from pydantic import ValidationError

    validator = Envelope.__pydantic_validator__
    validated: list[Any] = []

    class Counting:
        def validate_python(self, *args: Any, **kwargs: Any) -> Any:
            validated.append(args)
            return validator.validate_python(*args, **kwargs)

    monkeypatch.setattr(Envelope, "__pydantic_validator__", Counting())
    REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    assert validated == []
    monkeypatch.undo()

    for bad in NOT_AN_ENVELOPES:
        with pytest.raises(ValidationError) as made:
            REGISTERED.envelope(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as before:
            Envelope(
                type=REGISTERED.TYPE,
                version=REGISTERED.VERSION,
                occurred_at=bad["occurred_at"],
                ticket_id=bad.get("ticket_id", REGISTERED.ticket_id),
                producer=bad["producer"],
                trace_id=None,
                payload=REGISTERED.model_dump(mode="json"),
            )
        assert made.value.errors() == before.value.errors()
    # a payload the model cannot dump as JSON still raises
    broken = REGISTERED.model_copy(update={"content": object()})
    with pytest.raises(Exception, match="serialize|Unable"):
        broken.envelope(producer="intake", occurred_at=REGISTERED.registered_at)


def _outgoing_and_envelope(event: Event, how: dict[str, Any]) -> tuple[Any, Envelope]:
    """``event`` on its way out, and the envelope ``Event.envelope`` makes of it (its id)."""
    out = event.outgoing(**how)
    made = event.envelope(**how)
    return out, made.model_copy(update={"event_id": out.event_id})


def _assert_alike(out: Any, envelope: Envelope) -> None:
    assert out.to_json() == envelope.to_json()
    assert out.id_text == str(envelope.event_id) and out.event_id == envelope.event_id
    assert (out.type, out.version, out.topic, out.key) == (
        envelope.type,
        envelope.version,
        envelope.topic,
        envelope.key,
    )
    assert (out.occurred_at, out.ticket_id, out.producer, out.trace_id) == (
        envelope.occurred_at,
        envelope.ticket_id,
        envelope.producer,
        envelope.trace_id,
    )
    assert out.payload == envelope.payload
    assert out.as_envelope() == envelope


def test_an_outgoing_event_is_the_bytes_its_envelope_was() -> None:
    """``Event.outgoing`` writes the envelope's JSON straight from the model: for every event
    type in Chinese (with a Chinese trace id), the docs' bytes but for the new id; for times
    in Shanghai and in UTC, a ticket id given, the event's own or none, with a trace id and
    without, the bytes ``Event.envelope``'s ``to_json`` writes, and the same fields."""
    from shared.logging import trace_id_var

    for raw in every_event_in_chinese().values():
        envelope = Envelope.from_json(raw)
        how = {
            "producer": envelope.producer,
            "occurred_at": envelope.occurred_at,
            "ticket_id": envelope.ticket_id,
        }
        token = trace_id_var.set(envelope.trace_id)
        try:
            out, before = _outgoing_and_envelope(parse_payload(envelope), how)
        finally:
            trace_id_var.reset(token)
        assert out.to_json() == raw.replace(str(envelope.event_id).encode(), out.id_text.encode())
        _assert_alike(out, before)
    for trace in (None, "trace-第1号"):
        token = trace_id_var.set(trace)
        try:
            # each time in turn, twice: the same instant in Shanghai and in UTC is written
            # as its own time, not as the last one written
            for event, how in _chinese_events() * 2:
                _assert_alike(*_outgoing_and_envelope(event, how))
                utc = how["occurred_at"].astimezone(UTC)
                _assert_alike(*_outgoing_and_envelope(event, how | {"occurred_at": utc}))
        finally:
            trace_id_var.reset(token)


def test_orjson_writes_every_text_as_an_envelopes_json_writes_it() -> None:
    """``Outgoing`` writes its ticket id, producer and trace id with orjson, around the
    payload pydantic writes: the same bytes as pydantic's for every character (each escaped
    alike, or not), and both refuse a lone surrogate."""
    from pydantic import TypeAdapter

    pydantic_json = TypeAdapter(str).serializer.to_json
    surrogates = range(0xD800, 0xE000)
    chars = [chr(c) for c in range(0x110000) if c not in surrogates]
    for i in range(0, len(chars), 512):
        text = '"'.join(chars[i : i + 512])  # each beside a character that is escaped
        assert orjson.dumps(text) == pydantic_json(text), hex(ord(chars[i]))
    for c in surrogates:
        with pytest.raises(Exception):  # noqa: B017, PT011 - each its own error type
            orjson.dumps(chr(c))
        with pytest.raises(Exception):  # noqa: B017, PT011
            pydantic_json(chr(c))


def test_an_outgoing_event_refuses_what_its_envelope_refuses() -> None:
    """Values not of their plain type are validated as an envelope's are: refused with the
    same errors, or, taken, written as the envelope writes them; a model that cannot be
    written as JSON raises when it goes out, as its envelope did when made."""
    from pydantic import ValidationError

    for bad in NOT_AN_ENVELOPES:
        # a time just written goes out without a second look; a naive one still does not
        REGISTERED.outgoing(producer="intake", occurred_at=REGISTERED.registered_at)
        with pytest.raises(ValidationError) as out:
            REGISTERED.outgoing(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as envelope:
            REGISTERED.envelope(**bad)  # type: ignore[arg-type]
        assert out.value.errors() == envelope.value.errors()

    class Text(str):
        pass

    for taken in (
        {"producer": "intake", "occurred_at": "2026-01-15T09:02:03.5+08:00"},
        {"producer": Text("intake"), "occurred_at": REGISTERED.registered_at},
        {"producer": "intake", "occurred_at": REGISTERED.registered_at, "ticket_id": Text("T")},
    ):
        out, before = _outgoing_and_envelope(REGISTERED, taken)
        assert out.to_json() == before.to_json()
    broken = REGISTERED.model_copy(update={"content": object()})
    with pytest.raises(Exception, match="serialize|Unable"):
        broken.outgoing(producer="intake", occurred_at=REGISTERED.registered_at)


def test_an_event_without_a_time_is_refused_before_any_time_was_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first event a process writes has no time written before it (``_LAST_TIME`` as at
    import): an event given no time is refused there too, not taken for that last time."""
    from pydantic import ValidationError

    from shared.events import base

    monkeypatch.setattr(base, "_LAST_TIME", [None, b""])
    with pytest.raises(ValidationError):
        REGISTERED.outgoing(producer="intake", occurred_at=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        REGISTERED.envelope(producer="intake", occurred_at=None)  # type: ignore[arg-type]


def test_an_outgoing_event_under_another_trace_id_is_its_envelope_under_it() -> None:
    """A set-based run's events go out under each ticket's own trace id (``_own_trace_ids``):
    the same event, with the same id, written under that trace id."""
    from shared.consumer import _own_trace_ids
    from shared.logging import trace_id_var

    token = trace_id_var.set("trace-run")
    try:
        events: list[Any] = [
            REGISTERED.outgoing(producer="intake", occurred_at=REGISTERED.registered_at),
            REGISTERED.model_copy(update={"ticket_id": "TJ2"}).outgoing(
                producer="intake", occurred_at=REGISTERED.registered_at
            ),
        ]
    finally:
        trace_id_var.reset(token)
    run = [
        REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at).model_copy(
            update={"trace_id": trace, "ticket_id": ticket}
        )
        for ticket, trace in (("TJ20260115000123", "trace-run"), ("TJ2", "追踪-2"))
    ]
    first, second = events
    _own_trace_ids(events, 0, run)
    assert events[0] is first
    assert events[1].id_text == second.id_text and events[1].trace_id == "追踪-2"
    before = second.as_envelope()
    _assert_alike(events[1], before.model_copy(update={"trace_id": "追踪-2"}))


def test_an_outgoing_event_given_a_trace_id_is_the_one_made_with_it_in_force() -> None:
    """``Event.outgoing``'s ``trace_id``, given (None too), is what the event carries in
    place of the one in force, as if it were in force; not given, the one in force."""
    from shared.logging import trace_id_var

    at = REGISTERED.registered_at
    token = trace_id_var.set("追踪-在用")
    try:
        in_force = REGISTERED.outgoing(producer="intake", occurred_at=at)
        given = [
            REGISTERED.outgoing(producer="intake", occurred_at=at, trace_id=t)
            for t in ("追踪-2", None)
        ]
    finally:
        trace_id_var.reset(token)
    assert in_force.trace_id == "追踪-在用"
    for event, trace in zip(given, ("追踪-2", None), strict=True):
        token = trace_id_var.set(trace)
        try:
            made = REGISTERED.outgoing(producer="intake", occurred_at=at)
        finally:
            trace_id_var.reset(token)
        assert event.trace_id == trace
        assert event.to_json() == made.to_json().replace(
            made.id_text.encode(), event.id_text.encode()
        )


def test_an_event_made_of_a_mapping_is_the_one_made_of_its_keyword_arguments() -> None:
    """``Event.of``: the model's own validation, of a mapping as it is: the same event, the
    same errors, what the model does not take ignored."""
    from pydantic import ValidationError

    fields = REGISTERED.model_dump() | {"status": "registered", "phone": "13800000000"}
    assert TicketRegistered.of(fields) == TicketRegistered(**fields) == REGISTERED
    for bad in ({**fields, "channel": "信鸽"}, {**fields, "registered_at": "不是时间"}, {}):
        with pytest.raises(ValidationError) as of:
            TicketRegistered.of(bad)
        with pytest.raises(ValidationError) as made:
            TicketRegistered(**bad)
        assert of.value.errors() == made.value.errors()


def test_no_event_field_defaults_to_a_value_copied_for_each_event() -> None:
    """A list field defaults to a factory: pydantic deep-copies a mutable default for each
    model made without it (~1 us, dispatch makes every ``ticket.dispatched`` so), and
    ``list()`` gives the same fresh empty list for a tenth of that."""
    from pydantic_core import PydanticUndefined

    for model in EVENT_TYPES.values():
        for name, field in model.model_fields.items():
            assert field.default is PydanticUndefined or field.default.__hash__ is not None, (
                f"{model.__name__}.{name}: default_factory, not a default to copy"
            )
    fields = {
        "ticket_id": "TJ1",
        "unit_id": "河西区水务局",
        "matter_code": "WATER",
        "district": "120103",
        "type": "complaint",
        "urgency": "general",
        "dispatched_at": REGISTERED.registered_at,
    }
    first, second = TicketDispatched.of(fields), TicketDispatched.of(fields)
    assert first.co_unit_ids == [] and first.co_unit_ids is not second.co_unit_ids
    assert first.model_dump(exclude_unset=True) == fields


def _strictly(raw: bytes) -> Envelope:
    """The envelope as ``from_json`` read it before: orjson's dict, validated."""
    return Envelope._from_json_strictly(raw)


def test_an_envelope_read_from_its_bytes_is_the_one_orjsons_dict_validated_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pydantic-core reads the bytes straight into the envelope: the same fields, of the same
    types, as orjson's dict validated; without reading them a second time."""
    from zoneinfo import ZoneInfo

    shanghai = datetime(2026, 1, 15, 9, 2, 3, tzinfo=ZoneInfo("Asia/Shanghai"))
    raws = [event.envelope(**how).to_json() for event, how in _chinese_events()]
    raws += [
        # written some other way: spaces, keys in another order, an offset, no ticket id
        orjson.dumps(
            {
                "payload": {"nested": [{"a": 1.5, "b": None, "c": True}], "n": 2**40},
                "trace_id": None,
                "producer": "sla",
                "occurred_at": shanghai.isoformat(),
                "version": 1,
                "type": "sla.overdue",
                "event_id": "01a241c0-f9c0-795c-b8f8-84662142d0c3",
            },
            option=orjson.OPT_INDENT_2,
        )
    ]
    strict = [_strictly(raw) for raw in raws]

    def never(raw: bytes) -> Envelope:
        raise AssertionError("read twice")

    monkeypatch.setattr(Envelope, "_from_json_strictly", never)
    for raw, before in zip(raws, strict, strict=True):
        read = Envelope.from_json(raw)
        assert read == before and repr(read) == repr(before)
        assert read.__pydantic_fields_set__ == before.__pydantic_fields_set__
        for name in Envelope.model_fields:
            assert type(getattr(read, name)) is type(getattr(before, name)), name
        assert read.occurred_at.utcoffset() == before.occurred_at.utcoffset()
        assert read.to_json() == before.to_json()


ENVELOPE = (
    b'{"event_id":"01a241c0-f9c0-795c-b8f8-84662142d0c3","type":"ticket.registered",'
    b'"version":1,"occurred_at":"2026-03-02T01:00:00Z","ticket_id":"TJ1","producer":"intake",'
    b'"trace_id":null,"payload":{"phone":"13920001234"}}'
)


@pytest.mark.parametrize(
    "raw",
    [
        ENVELOPE.replace(b'"event_id":"01a241c0-f9c0-795c-b8f8-84662142d0c3",', b""),
        b'{"type":"ticket.registered","payload":{"phone":"13920001234"}}',
        ENVELOPE.replace(b'"01a241c0-f9c0-795c-b8f8-84662142d0c3"', b"null"),
        ENVELOPE.replace(b'"2026-03-02T01:00:00Z"', b'"2026-03-02T01:00:00"'),
        ENVELOPE.replace(b'{"phone":"13920001234"}', b'"13920001234"'),
        ENVELOPE.replace(b'"version":1', '"version":"第1版"'.encode()),
        ENVELOPE + b" 13920001234",
        ENVELOPE.replace(b"13920001234", b"\\ud800"),
        b"\xff\xfe\x00 13920001234",
        b"13920001234 is not JSON",
        b"[13920001234]",
        b'"13920001234"',
        b"13920001234",
        b"",
    ],
)
def test_a_message_that_is_not_an_envelope_is_refused_for_the_reason_it_always_was(
    raw: bytes,
) -> None:
    """Not JSON, no event id (pydantic-core would invent one), a field of the wrong type:
    refused as orjson and validation refused it, with the same reason (and never quoting
    what the message holds)."""
    from shared.bus import parse_error

    with pytest.raises(Exception) as before:
        _strictly(raw)
    with pytest.raises(Exception) as now:
        Envelope.from_json(raw)
    assert type(now.value) is type(before.value)
    assert parse_error(now.value) == parse_error(before.value)
    assert "13920001234" not in parse_error(now.value)


def test_an_event_read_in_one_pass_is_its_envelope_and_payload_read_in_two() -> None:
    """``read`` (how the bus reads a set-based handler's types): for every type, in Chinese,
    the header ``Envelope.from_json`` reads, field by field and of the same types, and the
    model ``parse_payload`` makes of its payload; and back, the envelope and bytes it was."""
    raws = list(every_event_in_chinese().values())
    for raw in raws:
        envelope = Envelope.from_json(raw)
        model = EVENT_TYPES[envelope.type]
        received = read(raw, model)
        assert isinstance(received, Received), envelope.type
        for name in Header.model_fields:
            assert getattr(received, name) == getattr(envelope, name), name
            assert type(getattr(received, name)) is type(getattr(envelope, name)), name
        assert received.occurred_at.utcoffset() == envelope.occurred_at.utcoffset()
        assert type(received.payload) is model
        assert received.payload == parse_payload(envelope) == received.event()
        assert received.as_envelope() == envelope
        assert received.as_envelope().to_json() == raw
        assert parse_payloads([received, envelope], model) == [received.payload] * 2
    assert len(raws) == len(EVENT_TYPES)
    assert sum("中文：" in raw.decode() for raw in raws) >= len(EVENT_TYPES) - 5


def test_an_event_of_another_type_is_not_read_as_this_one() -> None:
    registered = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    assert read(registered.to_json(), TicketDispatched) is None
    # the same key twice: the last is the one read; the type told first is not the event's
    twice = registered.to_json()[:-1] + b',"type":"ticket.noted"}'
    assert Envelope.from_json(twice).type == "ticket.noted"
    assert read(twice, TicketRegistered) is None
    with pytest.raises(UnknownEvent):
        parse_payloads([registered], TicketDispatched)


def test_an_older_version_is_not_read_as_the_current_one_but_upcast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Version 0 of a payload the current model would take as it is: ``read`` refuses it
    (its fields may mean something else then); read as an ``Envelope``, it is upcast."""
    from shared.bus import decode

    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    old = envelope.model_copy(update={"version": 0}).to_json()
    monkeypatch.setitem(
        UPCASTERS, ("ticket.registered", 0), lambda p: p | {"content": "升级后：" + p["content"]}
    )
    assert read(old, TicketRegistered) is None
    [got], bad = decode([old], frozenset({"ticket.registered"}), models=EVENT_TYPES)
    assert type(got) is Envelope and bad == []
    [event] = parse_payloads([got], TicketRegistered)
    assert event.content == "升级后：家里暖气不热，室温只有14度"


def test_a_newer_version_than_known_is_not_read_and_refused_when_parsed() -> None:
    from shared.bus import decode

    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    newer = envelope.model_copy(update={"version": 2}).to_json()
    assert read(newer, TicketRegistered) is None
    [got], bad = decode([newer], frozenset({"ticket.registered"}), models=EVENT_TYPES)
    assert type(got) is Envelope and bad == []
    with pytest.raises(UnknownEvent, match="newer"):
        parse_payloads([got], TicketRegistered)


def test_a_run_of_outgoing_events_is_each_event_going_out() -> None:
    """``Event.outgoing_run`` (a set-based run's events made together): for each event type
    in Chinese, several fields of it with their own trace ids (Chinese, none), in Shanghai
    time and in UTC, the bytes and fields ``of(...).outgoing(...)`` makes one by one but
    for the new ids; values not of their plain type are taken or refused as one by one."""
    from pydantic import ValidationError

    for event, how in _chinese_events():
        if getattr(event, "ticket_id", None) is None:
            continue
        fields = [
            event.model_dump() | {"ticket_id": f"{event.ticket_id}-{n}"}  # type: ignore[attr-defined]
            for n in range(3)
        ]
        for at in (how["occurred_at"], how["occurred_at"].astimezone(UTC)):
            traces = ["trace-第1号", None, "trace-3"]
            run = type(event).outgoing_run(
                fields, producer=how["producer"], occurred_at=at, trace_ids=traces
            )
            assert len(run) == len(fields)
            for out, f, trace in zip(run, fields, traces, strict=True):
                one = (
                    type(event)
                    .of(f)
                    .outgoing(producer=how["producer"], occurred_at=at, trace_id=trace)
                )
                made = one.to_json().replace(one.id_text.encode(), out.id_text.encode())
                assert out.to_json() == made
                assert (out.topic, out.key, out.ticket_id, out.trace_id, out.occurred_at) == (
                    one.topic,
                    one.key,
                    one.ticket_id,
                    one.trace_id,
                    one.occurred_at,
                )
            assert len({out.id_text for out in run}) == len(run)
    fields = [REGISTERED.model_dump()]
    for bad in NOT_AN_ENVELOPES:
        if "ticket_id" in bad:  # a run's ticket ids are its models'
            continue
        with pytest.raises(ValidationError):
            TicketRegistered.outgoing_run(
                fields,
                producer=bad.get("producer"),  # type: ignore[arg-type]
                occurred_at=bad.get("occurred_at"),  # type: ignore[arg-type]
                trace_ids=[bad.get("trace_id")],
            )
    with pytest.raises(ValidationError):  # a model's own field refused as by ``of``
        TicketRegistered.outgoing_run(
            [fields[0] | {"urgency": "soon"}],
            producer="intake",
            occurred_at=REGISTERED.registered_at,
            trace_ids=[None],
        )
    taken = TicketRegistered.outgoing_run(
        fields,
        producer="intake",
        occurred_at="2026-01-15T09:02:03.5+08:00",  # type: ignore[arg-type]
        trace_ids=[None],
    )
    one = REGISTERED.outgoing(producer="intake", occurred_at="2026-01-15T09:02:03.5+08:00")  # type: ignore[arg-type]
    assert taken[0].to_json() == one.to_json().replace(
        one.id_text.encode(), taken[0].id_text.encode()
    )


def test_a_run_of_written_payloads_goes_out_as_the_models_run() -> None:
    """``Event.outgoing_written_run`` (a run whose payloads' JSON the producer wrote): for
    each event type in Chinese, in Shanghai time and in UTC, with trace ids in Chinese and
    none, the envelopes ``outgoing_run`` makes of the same fields but for their ids, their
    model read from the payload when asked for; header values not of their plain type are
    taken or refused as one by one."""
    from pydantic import ValidationError

    for event, how in _chinese_events():
        if getattr(event, "ticket_id", None) is None:
            continue
        models = [
            event.model_copy(update={"ticket_id": f"{event.ticket_id}-{n}"}) for n in range(3)
        ]
        payloads = [m.__pydantic_serializer__.to_json(m) for m in models]
        ticket_ids = [m.ticket_id for m in models]  # type: ignore[attr-defined]
        for at in (how["occurred_at"], how["occurred_at"].astimezone(UTC)):
            traces = ["trace-第1号", None, "trace-3"]
            run = type(event).outgoing_written_run(
                payloads,
                producer=how["producer"],
                occurred_at=at,
                ticket_ids=ticket_ids,
                trace_ids=traces,
            )
            made = type(event).outgoing_run(
                [m.model_dump() for m in models],
                producer=how["producer"],
                occurred_at=at,
                trace_ids=traces,
            )
            for out, one, model in zip(run, made, models, strict=True):
                assert out.to_json() == one.to_json().replace(
                    one.id_text.encode(), out.id_text.encode()
                )
                assert (out.type, out.version, out.topic, out.key, out.trace_id) == (
                    one.type,
                    one.version,
                    one.topic,
                    one.key,
                    one.trace_id,
                )
                assert out.event == model and out.payload == one.payload
            assert len({out.id_text for out in run}) == len(run)
    payload = REGISTERED.__pydantic_serializer__.to_json(REGISTERED)
    for bad in NOT_AN_ENVELOPES:
        if "ticket_id" in bad:
            continue
        with pytest.raises(ValidationError):
            TicketRegistered.outgoing_written_run(
                [payload],
                producer=bad.get("producer"),  # type: ignore[arg-type]
                occurred_at=bad.get("occurred_at"),  # type: ignore[arg-type]
                ticket_ids=[REGISTERED.ticket_id],
                trace_ids=[bad.get("trace_id")],
            )
    taken = TicketRegistered.outgoing_written_run(
        [payload],
        producer="intake",
        occurred_at="2026-01-15T09:02:03.5+08:00",  # type: ignore[arg-type]
        ticket_ids=[REGISTERED.ticket_id],
        trace_ids=[None],
    )
    one = REGISTERED.outgoing(producer="intake", occurred_at="2026-01-15T09:02:03.5+08:00")  # type: ignore[arg-type]
    assert taken[0].to_json() == one.to_json().replace(
        one.id_text.encode(), taken[0].id_text.encode()
    )


def test_a_view_reads_its_fields_alone_and_its_envelope_is_the_whole_event() -> None:
    """A ``View`` (``RegisteredView``: what SLA and evaluation read of a registration) is
    read with the fields it declares, validated as its event's model declares them; its
    envelope (a one-by-one handler's, a dead letter's) is the whole event as it came, its
    text and address in Chinese too, not the view's fields alone."""
    from shared.events import ReceivedView, RegisteredView

    assert (RegisteredView.TYPE, RegisteredView.VERSION) == ("ticket.registered", 1)
    for name, field in RegisteredView.model_fields.items():
        full = TicketRegistered.model_fields[name]
        assert (field.annotation, field.default) == (full.annotation, full.default), name
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    raw = envelope.to_json()
    received = read(raw, RegisteredView)
    assert isinstance(received, ReceivedView)
    assert type(received.payload) is RegisteredView
    assert received.payload.model_dump() == {
        n: getattr(REGISTERED, n) for n in RegisteredView.model_fields
    }
    assert received.as_envelope() == envelope
    assert received.as_envelope().to_json() == raw
    assert received.as_envelope().payload["content"] == "家里暖气不热，室温只有14度"
    # read whole (an older version upcast, say): taken as the view
    assert parse_payloads([received, envelope], RegisteredView) == [received.payload] * 2
    # what the view refuses, its event's model refuses: read as an envelope, as ever
    bad = raw.replace(b'"urgency":"livelihood"', b'"urgency":"someday"')
    assert read(bad, RegisteredView) is None and read(bad, TicketRegistered) is None


def test_sla_and_evaluation_read_registrations_as_the_view_dispatch_whole() -> None:
    from services.dispatch.app import SPEC as DISPATCH
    from services.evaluation.app import SPEC as EVALUATION
    from services.sla.app import SPEC as SLA
    from shared.events import RegisteredView
    from shared.service import read_models

    for spec in (SLA, EVALUATION):
        models = read_models(spec)
        assert models is not None and models["ticket.registered"] is RegisteredView
        assert models["ticket.dispatched"] is TicketDispatched
    dispatch = read_models(DISPATCH)
    assert dispatch is not None and dispatch["ticket.registered"] is TicketRegistered
