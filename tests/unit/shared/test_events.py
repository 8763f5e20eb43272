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


def test_envelope_round_trips_through_json_with_chinese_text() -> None:
    envelope = REGISTERED.envelope(producer="intake", occurred_at=REGISTERED.registered_at)
    raw = envelope.to_json()
    assert "暖气不热".encode() in raw  # UTF-8 on the wire, not \u escapes
    again = Envelope.from_json(raw)
    assert again == envelope
    assert parse_payload(again) == REGISTERED


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
