"""Registration from every channel (Art 5), attachments as references, answering on the
spot (Art 6), flagging sensitive content (Art 27) and duplicate hints."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.handlers import registration
from shared.events import Channel
from tests.unit.intake.conftest import Intake, consultation, statements_run, ticket


@pytest.mark.parametrize("channel", ["phone", "web", "wechat_official", "wechat_mini"])
async def test_every_channel_registers_a_ticket_and_emits_ticket_registered(
    intake: Intake, channel: Channel
) -> None:
    body = await intake.register(ticket(channel=channel), who=f"account_{channel}")
    assert body["channel"] == channel
    assert body["status"] == "registered"
    assert body["urgency"] == "livelihood"  # the matter's default class
    [registered] = await intake.emitted("ticket.registered")
    assert registered.ticket_id == body["ticket_id"]
    given = ticket()
    # requester data stays in intake
    assert registered.payload == {
        "ticket_id": body["ticket_id"],
        "channel": channel,
        "type": given["type"],
        "urgency": "livelihood",
        "matter_code": given["matter_code"],
        "district": given["district"],
        "address": given["address"],
        "content": given["content"],
        "registered_at": body["registered_at"],
        "anonymous": False,
        "flagged": False,
    }


async def test_the_registered_event_carries_the_content_with_personal_data_masked(
    intake: Intake,
) -> None:
    content = "邻居电话13811112222，身份证号110101199003074514，一直在楼道堆放杂物"
    body = await intake.register(ticket(content=content))
    assert body["content"] == content  # the operator registering it sees what was said
    [registered] = await intake.emitted("ticket.registered")
    sent = registered.payload["content"]
    assert "13811112222" not in sent and "110101199003074514" not in sent  # Art 28, 29
    assert sent == "邻居电话***********，身份证号******************，一直在楼道堆放杂物"


@pytest.mark.parametrize("claimed", ["phone", "wechat_official"])
async def test_a_channel_account_cannot_file_on_another_channel(
    intake: Intake, claimed: Channel
) -> None:
    for who in ("citizen_web", "account_web"):  # the public website, a web client's key
        r = await intake.call(who, "POST", "/tickets", json=ticket(channel=claimed))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "channel"
    assert await intake.emitted() == []


async def test_the_ticket_carries_the_accounts_channel_when_the_body_names_none(
    intake: Intake,
) -> None:
    body = {k: v for k, v in ticket().items() if k != "channel"}
    assert (await intake.register(body, who="account_wechat_official"))["channel"] == (
        "wechat_official"
    )
    assert (await intake.register(body, who="citizen_web"))["channel"] == "web"
    r = await intake.call("operator", "POST", "/tickets", json=body)
    assert r.status_code == 422  # the hotline's staff say which channel they transcribe
    assert r.json()["errors"][0]["field"] == "channel"


async def test_a_channel_not_in_art_5_is_refused(intake: Intake) -> None:
    r = await intake.call("operator", "POST", "/tickets", json=ticket(channel="fax"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["channel"]


async def test_attachments_are_kept_as_references(intake: Intake) -> None:
    photos = [
        {"url": "https://files.example.cn/a/1.jpg", "name": "1.jpg", "content_type": "image/jpeg"},
        {"url": "http://files.example.cn/a/2.jpg"},
    ]
    body = await intake.register(ticket(attachments=photos))
    assert [a["url"] for a in body["attachments"]] == [p["url"] for p in photos]
    detail = await intake.call("operator", "GET", f"/tickets/{body['ticket_id']}")
    assert detail.json()["attachments"][0]["name"] == "1.jpg"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.cn/a.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://",
        "files.example.cn/a.jpg",
        "https://files.example.cn/a b.jpg",
    ],
)
async def test_only_http_and_https_references_are_accepted(intake: Intake, url: str) -> None:
    r = await intake.call(
        "operator",
        "POST",
        "/tickets",
        json=ticket(attachments=[{"url": "https://ok.cn/1"}, {"url": url}]),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "attachments.1.url"
    assert await intake.emitted() == []


async def test_attachment_count_and_url_length_follow_the_policy(intake: Intake) -> None:
    # default policy: at most 9 attachments, URLs of at most 2048 characters
    too_many = [{"url": f"https://files.example.cn/{i}.jpg"} for i in range(10)]
    r = await intake.call("operator", "POST", "/tickets", json=ticket(attachments=too_many))
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "attachments", "reason": "at most 9 attachments per ticket"}
    ]
    long_url = "https://files.example.cn/" + "a" * 2100
    r = await intake.call(
        "operator", "POST", "/tickets", json=ticket(attachments=[{"url": long_url}])
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "attachments.0.url"
    await intake.register(ticket(attachments=too_many[:9]))


# ---- answer on the spot (Art 6) -------------------------------------------------------


async def test_a_consultation_answered_on_the_spot_emits_only_ticket_answered(
    intake: Intake,
) -> None:
    answer = {"text": "可在天津人社APP办理灵活就业参保登记", "knowledge_entry_ids": ["KB-0001"]}
    body = await intake.register(consultation(answer=answer))
    assert body["status"] == "answered"
    assert body["answer"]["text"] == answer["text"]
    assert body["answer"]["knowledge_entry_ids"] == ["KB-0001"]
    assert body["answer"]["answered_by"] == "operator"
    events = await intake.emitted()
    # no ticket.registered: dispatch never sees it and no dispatch clock starts
    assert [e.type for e in events] == ["ticket.answered"]
    assert events[0].ticket_id == body["ticket_id"]
    assert events[0].payload == {
        "ticket_id": body["ticket_id"],
        "answered_at": body["registered_at"],
        "answer": answer["text"],
        "knowledge_entry_ids": ["KB-0001"],
        "answered_by": "operator",
        "channel": "phone",
        "type": "consultation",
        "urgency": body["urgency"],
        "matter_code": "SOC-002",
        "district": "120103",
        "registered_at": body["registered_at"],
        "flagged": False,
    }


@pytest.mark.parametrize("ticket_type", ["complaint", "help", "report", "suggestion", "praise"])
async def test_only_a_consultation_can_be_answered_on_the_spot(
    intake: Intake, ticket_type: str
) -> None:
    before = (await intake.tickets())["count"]
    r = await intake.call(
        "operator",
        "POST",
        "/tickets",
        json=ticket(type=ticket_type, answer={"text": "已答复"}),
    )
    assert r.status_code == 409, r.text
    assert r.json()["rule"] == "Art 6"
    assert (await intake.tickets())["count"] == before
    assert await intake.emitted() == []


async def test_only_an_operator_answers_on_the_spot(intake: Intake) -> None:
    r = await intake.call(
        "citizen_web", "POST", "/tickets", json=consultation(answer={"text": "自己答复"})
    )
    assert r.status_code == 403
    assert await intake.emitted() == []


async def test_an_answer_needs_its_text(intake: Intake) -> None:
    r = await intake.call("operator", "POST", "/tickets", json=consultation(answer={"text": ""}))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "answer.text"


# ---- sensitive content (Art 27) -------------------------------------------------------


async def test_sensitive_content_is_flagged_at_registration(intake: Intake) -> None:
    body = await intake.register(
        ticket(type="complaint", content="物业一直不管，再不解决我就跳 楼，活不下去了")
    )
    assert body["flagged"] is True
    assert body["flagged_keywords"] == ["活不下去", "跳楼"]
    events = await intake.emitted()
    assert [e.type for e in events] == ["ticket.registered", "ticket.flagged"]
    assert events[0].payload["flagged"] is True
    assert events[1].payload["keywords"] == ["活不下去", "跳楼"]
    assert events[1].payload["district"] == "120103"
    assert events[1].payload["matter_code"] == "WATER-001"


async def test_ordinary_content_is_not_flagged(intake: Intake) -> None:
    body = await intake.register(ticket())
    assert body["flagged"] is False
    assert [e.type for e in await intake.emitted()] == ["ticket.registered"]


async def test_a_flagged_consultation_answered_on_the_spot_is_still_reported(
    intake: Intake,
) -> None:
    await intake.register(
        consultation(
            content="想咨询一下，家人说要轻生，可以找哪里求助", answer={"text": "已转心理援助热线"}
        )
    )
    assert [e.type for e in await intake.emitted()] == ["ticket.answered", "ticket.flagged"]


# ---- duplicate hints ------------------------------------------------------------------


async def test_the_same_phone_and_matter_within_the_window_is_a_likely_duplicate(
    intake: Intake,
) -> None:
    first = await intake.register(ticket())
    intake.advance(hours=3)
    second = await intake.register(ticket(requester={"name": "刘芳", "phone": "+86 139 2000 1234"}))
    assert [d["ticket_id"] for d in second["likely_duplicates"]] == [first["ticket_id"]]
    assert second["likely_duplicates"][0]["content"] == ticket()["content"]
    other_matter = await intake.register(ticket(matter_code="HOUSE-002"))
    assert other_matter["likely_duplicates"] == []
    other_phone = await intake.register(ticket(requester={"name": "王五", "phone": "13800000000"}))
    assert other_phone["likely_duplicates"] == []


async def test_a_ticket_outside_the_window_is_not_a_duplicate(intake: Intake) -> None:
    first = await intake.register(ticket())
    intake.advance(hours=23, minutes=59)
    near = await intake.register(ticket())
    assert [d["ticket_id"] for d in near["likely_duplicates"]] == [first["ticket_id"]]
    intake.advance(minutes=2)  # first is now 24 h 1 min old; near is 2 min old
    later = await intake.register(ticket())
    assert [d["ticket_id"] for d in later["likely_duplicates"]] == [near["ticket_id"]]


async def test_a_channel_client_is_not_told_about_other_tickets_of_a_phone(
    intake: Intake,
) -> None:
    await intake.register(ticket())
    again = await intake.register(ticket(channel="web"), who="citizen_web")
    assert again["likely_duplicates"] == []
    assert again["requester_phone"] == "139****1234"


async def test_flagged_duplicates_are_hinted_first(intake: Intake) -> None:
    flagged = await intake.register(ticket(content="停水一周没人管，再不来人我就跳楼"))
    intake.advance(minutes=10)
    plain = await intake.register(ticket())
    intake.advance(minutes=10)
    third = await intake.register(ticket())
    assert [d["ticket_id"] for d in third["likely_duplicates"]] == [
        flagged["ticket_id"],
        plain["ticket_id"],
    ]
    assert third["likely_duplicates"][0]["flagged"] is True


async def test_the_serial_pool_takes_many_serials_in_one_round_trip() -> None:
    class Sequence:  # the driver's connection, as far as the pool uses it
        def __init__(self) -> None:
            self.last = 0
            self.asked: list[int] = []

        async def fetch(self, _statement: str, n: int) -> list[tuple[int]]:
            self.asked.append(n)
            self.last += n
            return [(s,) for s in range(self.last - n + 1, self.last + 1)]

    sequence = Sequence()
    pool = registration._SerialPool(ahead=8)
    taken = [await pool.take(sequence, 3) for _ in range(5)]
    assert taken == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15]]
    assert sequence.asked == [8, 8]
    assert await pool.take(sequence, 20) == list(range(16, 36))  # more than ahead at once
    assert sequence.asked == [8, 8, 20]


async def test_requests_that_find_the_matters_stale_together_read_them_once(
    intake: Intake,
) -> None:
    registration.forget_matters(intake.ctx)
    with statements_run(intake) as run:
        found = await asyncio.gather(
            *(registration._matter(intake.ctx, "WATER-001") for _ in range(10))
        )
    assert sum("FROM matters" in s for s in run) == 1
    assert found == [registration._Matter(True, False, "livelihood")] * 10
