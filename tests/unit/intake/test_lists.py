"""The operators' list: filters, pagination, sorting, flagged first (Art 27), Chinese text
search, masking (Art 28) — and the audit of every full read of requester data (Art 29)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.intake.handlers import queries
from tests.unit.intake.conftest import T0, Intake, consultation, ticket


def ids(page: dict[str, Any]) -> list[str]:
    return [t["ticket_id"] for t in page["data"]]


@pytest.fixture
async def four(intake: Intake) -> dict[str, str]:
    """Four tickets an hour apart, the third one flagged."""
    made = {}
    for name, body in {
        "water": ticket(channel="phone"),
        "property": ticket(
            channel="web",
            type="complaint",
            matter_code="HOUSE-002",
            district="120101",
            content="小区物业不作为，楼道垃圾堆积无人清理",
            requester={"name": "张伟", "phone": "13700001111"},
        ),
        "threat": ticket(
            channel="wechat_mini",
            type="complaint",
            matter_code="HOUSE-002",
            district="120101",
            content="物业强行停水，业主准备集体上访",
            requester={"name": "李娜", "phone": "13700002222"},
        ),
        "consult": consultation(channel="wechat_official", urgency="general"),
    }.items():
        made[name] = (await intake.register(body))["ticket_id"]
        intake.advance(hours=1)
    return made


async def test_flagged_tickets_come_first_whatever_the_order(
    intake: Intake, four: dict[str, str]
) -> None:
    newest_first = ids(await intake.tickets())
    assert newest_first == [four["threat"], four["consult"], four["property"], four["water"]]
    oldest_first = ids(await intake.tickets(sort="registered_at"))
    assert oldest_first == [four["threat"], four["water"], four["property"], four["consult"]]
    by_class = ids(await intake.tickets(sort="urgency"))
    assert by_class == [four["threat"], four["water"], four["consult"], four["property"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"channel": "web"}, ["property"]),
        ({"type": "consultation"}, ["consult"]),
        ({"urgency": "livelihood"}, ["water"]),
        ({"district": "120101"}, ["threat", "property"]),
        ({"matter_code": "HOUSE-002"}, ["threat", "property"]),
        ({"flagged": "true"}, ["threat"]),
        ({"flagged": "false"}, ["consult", "property", "water"]),
        ({"status": "registered"}, ["threat", "consult", "property", "water"]),
        ({"status": "answered"}, []),
        (
            {"registered_from": (T0 + timedelta(hours=1)).isoformat()},
            ["threat", "consult", "property"],
        ),
        (
            {
                "registered_from": (T0 + timedelta(hours=1)).isoformat(),
                "registered_to": (T0 + timedelta(hours=2)).isoformat(),
            },
            ["property"],
        ),
        ({"channel": "web", "district": "120103"}, []),
    ],
)
async def test_filters(
    intake: Intake, four: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    page = await intake.tickets(**params)
    assert ids(page) == [four[name] for name in expected]
    assert page["count"] == len(expected)


async def test_pages_and_count(intake: Intake, four: dict[str, str]) -> None:
    first = await intake.tickets(limit=2)
    second = await intake.tickets(limit=2, offset=2)
    assert first["count"] == second["count"] == 4
    assert ids(first) + ids(second) == [
        four["threat"],
        four["consult"],
        four["property"],
        four["water"],
    ]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("停水", ["threat", "water"]),
        ("物业", ["threat", "property"]),
        ("楼道垃圾", ["property"]),
        ("物业 停水", ["threat"]),
        ("养老保险", ["consult"]),
        ("恢复供水", ["water"]),
        ("暖气", []),
    ],
)
async def test_chinese_text_search_over_the_content(
    intake: Intake, four: dict[str, str], q: str, expected: list[str]
) -> None:
    page = await intake.tickets(q=q)
    assert ids(page) == [four[name] for name in expected]
    assert page["count"] == len(expected)


async def test_a_search_matching_many_tickets_reads_them_in_the_same_order(
    intake: Intake, four: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WIDE_SEARCH matches the list is walked in its index order, checking each
    ticket's words: the same tickets, order, paging and count as reading the matches."""
    monkeypatch.setattr(queries, "WIDE_SEARCH", 0)
    for q, expected in [("停水", ["threat", "water"]), ("物业 停水", ["threat"]), ("暖气", [])]:
        page = await intake.tickets(q=q)
        assert ids(page) == [four[name] for name in expected], q
        assert page["count"] == len(expected)
    second = await intake.tickets(q="物业", limit=1, offset=1)
    assert ids(second) == [four["property"]] and second["count"] == 2
    assert ids(await intake.tickets(q="停水", flagged="false")) == [four["water"]]


async def test_search_combines_with_filters(intake: Intake, four: dict[str, str]) -> None:
    assert ids(await intake.tickets(q="停水", flagged="false")) == [four["water"]]


async def test_refused_filters_name_their_field(intake: Intake) -> None:
    for params, field in [
        ({"channel": "fax"}, "channel"),
        ({"urgency": "urgent"}, "urgency"),
        ({"district": "999999"}, "district"),
        ({"sort": "name"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"registered_from": "yesterday"}, "registered_from"),
        ({"registered_from": "2026-03-02T10:00:00"}, "registered_from"),  # no time zone
        (
            {
                "registered_from": "2026-03-02T10:00:00+08:00",
                "registered_to": "2026-03-02T09:00:00+08:00",
            },
            "registered_to",
        ),
        ({"q": "的了，。"}, "q"),
        ({"stauts": "registered"}, "stauts"),
    ]:
        r = await intake.call("operator", "GET", "/tickets", params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (params, r.text)


async def test_lists_mask_the_requester_for_every_role(
    intake: Intake, four: dict[str, str]
) -> None:
    for who in ("operator", "agency", "admin"):
        page = await intake.tickets(who=who, channel="web")
        [row] = page["data"]
        assert row["requester_phone"] == "137****1111"
        assert row["requester_name"] == "张*"


@pytest.mark.parametrize("who", ["citizen_web", "unit_water", "supervisor"])
async def test_roles_without_a_need_do_not_list_or_read_tickets(intake: Intake, who: str) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    assert (await intake.call(who, "GET", "/tickets")).status_code == 403
    assert (await intake.call(who, "GET", f"/tickets/{tid}")).status_code == 403


async def test_every_full_read_of_requester_data_is_audited(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    intake.advance(minutes=5)
    detail = await intake.call("operator", "GET", f"/tickets/{tid}")
    assert detail.json()["requester_phone"] == "13920001234"
    assert detail.json()["requester_name"] == "刘芳"
    await intake.call("agency", "GET", f"/tickets/{tid}")
    r = await intake.call("admin", "GET", "/audit/requester-reads", params={"ticket_id": tid})
    assert r.status_code == 200, r.text
    reads = r.json()["data"]
    assert [(x["reader"], x["reader_role"]) for x in reads] == [
        ("agency", "agency"),
        ("operator", "operator"),
    ]
    assert reads[1]["read_at"].startswith((T0 + timedelta(minutes=5)).isoformat()[:16])
    assert reads[1]["ticket_id"] == tid


async def test_lists_and_anonymous_tickets_leave_no_audit_rows(intake: Intake) -> None:
    await intake.register(ticket())
    anonymous = await intake.register(
        ticket(type="report", matter_code="URBAN-001", requester={}, anonymous=True)
    )
    await intake.tickets()
    await intake.call("operator", "GET", f"/tickets/{anonymous['ticket_id']}")
    r = await intake.call("agency", "GET", "/audit/requester-reads")
    assert r.json()["count"] == 0


async def test_only_agency_and_admin_read_the_audit_log(intake: Intake) -> None:
    r = await intake.call("operator", "GET", "/audit/requester-reads")
    assert r.status_code == 403


async def test_an_unknown_ticket_is_not_found(intake: Intake) -> None:
    r = await intake.call("operator", "GET", "/tickets/TJ20260302999999")
    assert r.status_code == 404
