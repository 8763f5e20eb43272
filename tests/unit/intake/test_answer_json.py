"""The registration's answer is written once as JSON (``answer_json``): the same bytes as
the route's response model writes of ``registration_answer`` (what the route answered
before: field order, times, Chinese as UTF-8, the same escapes), for every kind of ticket
and caller; the route answers those bytes, and a retry with the same Idempotency-Key the
same bytes again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from services.intake.domain import Status
from services.intake.handlers import registration as reg
from services.intake.schemas import DuplicateHint, TicketCreate, TicketRegistration
from shared.auth import Caller, Role
from shared.events import Channel
from tests.unit.intake import test_registered_json as registered_json
from tests.unit.intake.conftest import Intake, consultation, ticket
from tests.unit.intake.test_registered_json import RING, T0
from tests.unit.intake.test_registered_json import body as plain_body

CALLERS = [
    Caller(sub="operator", role=Role.OPERATOR),
    Caller(sub="citizen_web", role=Role.CITIZEN),
    Caller(sub="account:wechat_mini-1", role=Role.CITIZEN, channel="wechat_mini"),
    Caller(sub="admin", role=Role.ADMIN),
]
MATTER = reg._Matter(active=True, anonymous_allowed=True, default_urgency="livelihood")
# what the route's response model writes (shared/direct.py's serializer; FastAPI's own
# route writes the same JSON)
MODEL_JSON = TypeAdapter(TicketRegistration).serializer.to_json
TEXTS = [
    *registered_json.TEXTS,
    "a \r, \x00, \x1f and \x7f, </script>",
]
TIMES = [
    *registered_json.TIMES,
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    T0.replace(tzinfo=None),  # a time without its zone
]
HINTS = [
    DuplicateHint(
        ticket_id="TJ20260301000007",
        status="dispatched",
        registered_at=T0 - timedelta(days=1, microseconds=5),
        flagged=True,
        content="同一个电话，上周也反映过\t“停水”",
    ),
    DuplicateHint(
        ticket_id="TJ20260228000003",
        status=Status.REGISTERED,
        registered_at=(T0 - timedelta(days=2)).astimezone(timezone(timedelta(hours=8))),
        flagged=False,
        content="emoji 🚰",
    ),
]


def body(i: int, content: str) -> TicketCreate:
    """test_registered_json's bodies, some without a requester or with an ID number,
    attachments, an answer on the spot."""
    given = plain_body(i, content).model_dump(exclude_unset=True)
    if i % 7 == 6:
        del given["requester"]
    elif i % 3 == 1:
        given["requester"]["id_number"] = "120101199003074516"
    if i % 5 == 2:
        given["attachments"] = [
            {"url": "https://files.example.cn/a.jpg", "name": "照片.jpg"},
            {"url": 'http://files.example.cn/b?x=1&y="2"', "content_type": "image/png"},
        ]
    if i % 5 == 4 and i % 2 == 0:
        given["answer"] = {"text": f"可在社保窗口办理。{content}", "knowledge_entry_ids": ["K-1"]}
    return TicketCreate.model_validate(given)


def cases() -> list[tuple[Caller, TicketCreate, list[str], datetime, list[DuplicateHint]]]:
    found = []
    for i, content in enumerate(TEXTS * 4):
        for j, caller in enumerate(CALLERS):
            keywords = ["跳楼", "爆炸"][: (i + j) % 3]
            hints = HINTS[: (i + j) % 3]
            now = TIMES[(i + j) % len(TIMES)]
            found.append((caller, body(i + j, content), keywords, now, hints))
    return found


@pytest.mark.parametrize("case", range(len(TEXTS) * 4 * len(CALLERS)))
def test_the_same_bytes_as_the_response_model_writes(case: int) -> None:
    caller, data, keywords, now, hints = cases()[case]
    channel: Channel = caller.channel or ("phone", "web", "wechat_official")[case % 3]
    values = reg.ticket_values(RING, caller, data, channel, MATTER, keywords, now)
    number = f"TJ20260302{case:06d}"
    made = reg.answer_json(number, values, caller, data, hints)
    model = reg.registration_answer(number, values, caller, data, hints)
    assert made == MODEL_JSON(model)
    assert MODEL_JSON(TicketRegistration.model_validate_json(made)) == made


def test_a_text_orjson_cannot_write_goes_the_models_way() -> None:
    caller = CALLERS[0]
    data = body(0, TEXTS[0]).model_copy(update={"content": "a lone \ud800 surrogate"})
    values = reg.ticket_values(RING, caller, data, "phone", MATTER, [], T0)
    with pytest.raises(Exception) as refused:  # noqa: PT011 - whatever the model raises
        MODEL_JSON(reg.registration_answer("TJ20260302000001", values, caller, data, []))
    with pytest.raises(type(refused.value)):
        reg.answer_json("TJ20260302000001", values, caller, data, [])


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_the_route_answers_the_models_json_and_a_retry_the_same_bytes(
    intake: Intake, content_type: str
) -> None:
    """Through the direct route (``application/json``) and FastAPI's own (any other)."""
    for body_, who in [(ticket(), "operator"), (consultation(answer={"text": "可以"}), "operator")]:
        key = f"k-{len(content_type)}-{body_['type']}"
        first, again = [
            await intake.call(
                who,
                "POST",
                "/tickets",
                json=body_,
                headers={"Idempotency-Key": key, "content-type": content_type},
            )
            for _ in range(2)
        ]
        assert first.status_code == again.status_code == 201, first.text
        assert first.headers["content-type"] == "application/json"
        assert first.headers["content-length"] == str(len(first.content))
        assert first.content == MODEL_JSON(TicketRegistration.model_validate_json(first.content))
        assert body_["content"].encode() in first.content  # Chinese as UTF-8, not escaped
        assert again.content == first.content
