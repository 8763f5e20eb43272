from datetime import UTC, datetime

import pytest

from shared.events import (
    EVENT_TYPES,
    UPCASTERS,
    Envelope,
    TicketRegistered,
    UnknownEvent,
    parse_payload,
    topic_for,
)

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


def test_envelope_round_trips_through_json_with_chinese_text() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    raw = envelope.to_json()
    assert "暖气不热".encode() in raw  # UTF-8 on the wire, not \u escapes
    again = Envelope.from_json(raw)
    assert again == envelope
    assert parse_payload(again) == REGISTERED


def test_an_envelopes_json_is_the_contracts_bytes_compact_utf8_in_field_order() -> None:
    """The bytes ``to_json`` writes are what the outbox stores and the relay sends as they
    are (``shared.bus.type_of`` reads the type at its place at the start): compact, UTF-8,
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


def test_a_newer_version_than_known_is_refused_not_misread() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    with pytest.raises(UnknownEvent):
        parse_payload(envelope.model_copy(update={"version": 2}))
