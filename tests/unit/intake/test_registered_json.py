"""A batch writes a plain registration's ``ticket.registered`` straight from its stored
columns (``registered_json``): the same bytes as the event's model and envelope write
(``ticket_events``), for any ticket it takes; the rest go the models' way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain import DEFAULT_POLICY, IntakePolicy
from services.intake.handlers import registration as reg
from services.intake.schemas import TicketCreate
from shared.auth import Caller, Role
from shared.events import Channel, Envelope, TicketRegistered
from shared.sealing import KeyRing

RING = KeyRing.development()
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
OPERATOR = Caller(sub="operator", role=Role.OPERATOR)
CITIZEN = Caller(sub="citizen_web", role=Role.CITIZEN)
MATTER = reg._Matter(active=True, anonymous_allowed=True, default_urgency="livelihood")
TEXTS = [
    "停水三天了，请尽快处理。",
    "来电人王丽，电话13912345678，身份证120101199003071234，反映楼下噪音。",
    'quotes " and \\ backslashes, a tab\t, a line\nbreak, \x01 and \x7f',
    "emoji 🚰 and 𠀀 (outside the BMP), \u2028 and \u2029, café",
    "卡号 6222 0212 3456 7890 123，邮箱 someone@example.com",
]


def body(i: int, content: str) -> TicketCreate:
    given: dict[str, Any] = {
        "type": ("complaint", "help", "report", "suggestion", "consultation")[i % 5],
        "matter_code": "WATER-001",
        "district": ("120101", "120116", "120119")[i % 3],
        "content": content,
        "requester": {"name": "王丽", "phone": "139 1234 5678"},
        "anonymous": i % 4 == 3,
    }
    if i % 2:
        given["address"] = "和平区南京路 1 号\t“院”"
    if i % 3:
        given["urgency"] = ("life_safety", "general")[i % 2]
    return TicketCreate.model_validate(given)


def registered(
    i: int, content: str, caller: Caller, now: datetime
) -> tuple[TicketCreate, dict[str, Any], Any]:
    data = body(i, content)
    channel: Channel = ("phone", "web", "wechat_official", "wechat_mini")[i % 4]
    values = reg.ticket_values(RING, caller, data, channel, MATTER, [], now)
    number = f"TJ20260302{i:06d}"
    return data, values, reg.registration_answer(number, values, caller, data, [])


TIMES = [
    T0,
    T0 + timedelta(microseconds=120),
    (T0 + timedelta(microseconds=123000)).astimezone(timezone(timedelta(hours=8))),
    # a zero offset other than UTC; an offset with seconds (pydantic drops them, orjson
    # would round them)
    T0.replace(tzinfo=timezone(timedelta(0))) + timedelta(microseconds=1),
    datetime(1900, 1, 1, 8, 5, 43, tzinfo=ZoneInfo("Asia/Shanghai")),
]


@pytest.mark.parametrize("trace_id", [None, "4bf92f3577b34da6", 'a"trace\\id'])
@pytest.mark.parametrize("caller", [OPERATOR, CITIZEN], ids=["operator", "citizen"])
def test_the_same_bytes_as_the_events_model_writes(caller: Caller, trace_id: str | None) -> None:
    for i, content in enumerate(TEXTS * 3):
        now = TIMES[i % len(TIMES)]
        data, values, answer = registered(i, content, caller, now)
        made = reg.registered_json(answer.ticket_id, values, data.content, trace_id)
        assert made is not None
        event_id, raw = made
        (model,) = reg.ticket_events(answer.ticket_id, values, data, [], trace_id)
        assert raw == model.to_json().replace(model.id_text.encode(), event_id.encode())
        assert uuid.UUID(event_id).version == 7
        envelope = Envelope.from_json(raw)
        assert (envelope.type, envelope.ticket_id, envelope.trace_id) == (
            TicketRegistered.TYPE,
            answer.ticket_id,
            trace_id,
        )
        assert "13912345678" not in envelope.payload["content"]  # Art 28, 29


def test_the_event_fields_are_the_models() -> None:
    assert tuple(TicketRegistered.model_fields) == reg._REGISTERED_FIELDS
    assert reg._REGISTERED_TOPIC == "hotline.tickets"


def test_what_the_model_would_refuse_goes_the_models_way() -> None:
    data, values, answer = registered(0, TEXTS[0], OPERATOR, T0)
    number = answer.ticket_id
    naive = {**values, "registered_at": T0.replace(tzinfo=None)}
    assert reg.registered_json(number, naive, data.content, None) is None
    assert reg.registered_json(number, values, data.content, 7) is None  # type: ignore[arg-type]
    assert reg.registered_json(number, values, "a lone \ud800 surrogate", None) is None


def test_a_batch_writes_the_same_events_as_the_models() -> None:
    """``_BatchRows.add``: a plain registration's one event as ``registered_json`` writes
    it; a flagged one, or one answered on the spot, as the models write them."""
    policy = IntakePolicy.from_settings(T0, DEFAULT_POLICY)
    rows = reg._BatchRows()
    expected: list[tuple[int, str, bytes]] = []
    answered = TicketCreate.model_validate(
        {**body(4, "社保怎么交？").model_dump(), "answer": {"text": "在网上办理。"}}
    )
    for serial, (data, keywords) in enumerate(
        [
            (body(0, TEXTS[1]), []),
            (body(1, "有人说要跳楼"), ["跳楼"]),
            (answered, []),
            (body(2, TEXTS[2]), []),
        ],
        start=100,
    ):
        channel: Channel = "phone"
        values = reg.ticket_values(RING, OPERATOR, data, channel, MATTER, keywords, T0)
        item = reg._Registering(
            OPERATOR, data, channel, policy, MATTER, keywords, set(), T0, None, None, "t-1"
        )
        number, _ = rows.add(RING, item, values, serial, [])
        events = reg.ticket_events(number, values, data, keywords, "t-1")
        expected += [
            (serial, e.topic, e.to_json().replace(e.id_text.encode(), b"")) for e in events
        ]
    serials, ids, topics, payloads = rows.events
    assert [
        (serial, topic, raw.replace(event_id.encode(), b""))
        for serial, event_id, topic, raw in zip(serials, ids, topics, payloads, strict=True)
    ] == expected
    assert [Envelope.from_json(raw).type for raw in payloads] == [
        "ticket.registered",
        "ticket.registered",
        "ticket.flagged",
        "ticket.answered",
        "ticket.registered",
    ]
    assert len(set(ids)) == len(ids)
