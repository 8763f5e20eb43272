"""Extensions (Art 12): who may ask, when, how often, and what approval does."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.sla.domain import ExtensionContext, check_extension_request, extended_deadline
from shared.auth import Role
from shared.calendar import Period, WorkingCalendar
from shared.errors import IllegalTransition
from tests.conftest import at
from tests.unit.sla.conftest import Harness, accepted, dispatched, registered, settle

CALENDAR = WorkingCalendar()
DEADLINE = at("2026-03-11 09:00")  # a Wednesday
ELIGIBLE = ExtensionContext(
    clock_kind="completion",
    urgency="general",
    ticket_type="complaint",
    round=1,
    deadline=DEADLINE,
    requests_so_far=0,
    pending=False,
    stopped=False,
)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"clock_kind": "acceptance"}, "completion only"),
        ({"stopped": True}, "completion only"),
        ({"urgency": "life_safety"}, "only general-class"),
        ({"urgency": "livelihood"}, "only general-class"),
        ({"ticket_type": "consultation"}, "consultation and suggestion"),
        ({"ticket_type": "suggestion"}, "consultation and suggestion"),
        ({"round": 2}, "re-handling"),
        ({"requests_so_far": 2}, "at most 2"),
        ({"pending": True}, "one request at a time"),
    ],
)
def test_each_ineligible_request_is_refused_naming_its_rule(
    change: dict[str, object], rule: str
) -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_extension_request(replace(ELIGIBLE, **change), at("2026-03-02 10:00"), CALENDAR, 2)
    assert rule in (refused.value.rule or "")


def test_a_request_must_come_at_least_one_working_day_before_the_deadline() -> None:
    check_extension_request(ELIGIBLE, at("2026-03-10 09:00"), CALENDAR, 2)  # exactly 1 wd
    with pytest.raises(IllegalTransition) as refused:
        check_extension_request(ELIGIBLE, at("2026-03-10 09:01"), CALENDAR, 2)
    assert "1 working day" in (refused.value.rule or "")
    # a Monday deadline: the last day to ask is the Friday before
    monday = replace(ELIGIBLE, deadline=at("2026-03-16 09:00"))
    check_extension_request(monday, at("2026-03-13 09:00"), CALENDAR, 2)
    with pytest.raises(IllegalTransition):
        check_extension_request(monday, at("2026-03-14 09:00"), CALENDAR, 2)


def test_the_maximum_number_of_requests_is_a_setting() -> None:
    check_extension_request(
        replace(ELIGIBLE, requests_so_far=2), DEADLINE - timedelta(days=5), CALENDAR, 3
    )


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("7wd", "2026-03-20 09:00"),  # the class's completion period
        ("10wd", "2026-03-20 09:00"),  # a statutory period, capped at 7 working days
        ("3wd", "2026-03-16 09:00"),  # a shorter statutory period is not lengthened
    ],
)
def test_an_approved_extension_adds_the_period_capped(period: str, expected: str) -> None:
    new, provisional = extended_deadline(
        CALENDAR, DEADLINE, Period.parse(period), Period.parse("7wd")
    )
    assert new == at(expected) and provisional is False


async def open_general_ticket(harness: Harness, tid: str, type_: str = "complaint") -> None:
    start = at("2026-03-02 09:00")
    await harness.bus.publish(
        [
            registered(tid, "general", type_, when=start),
            dispatched(tid, "general", 0, type_=type_, start=start, unit_id="120101-housing"),
            accepted(tid, start, unit_id="120101-housing"),
        ]
    )


REQUEST = {
    "reason": "需协调产权单位共同维修，涉及多户业主意见征集",
    "progress": "已现场查看并联系物业",
    "measures": "本周内召开业主协调会，确定维修方案",
}


async def test_request_approve_and_reject_through_the_api(harness: Harness) -> None:
    async with harness.running() as ctx:
        await open_general_ticket(harness, "TJ-EXT")
        await settle(ctx)
        unit = {"role": Role.UNIT, "unit_id": "120101-housing"}
        other = await harness.call(
            "POST",
            "/tickets/TJ-EXT/extensions",
            role=Role.UNIT,
            unit_id="120103-housing",
            json=REQUEST,
        )
        assert other.status_code == 403
        missing = await harness.call(
            "POST", "/tickets/TJ-EXT/extensions", **unit, json={**REQUEST, "measures": ""}
        )
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "measures"

        first = await harness.call("POST", "/tickets/TJ-EXT/extensions", **unit, json=REQUEST)
        assert first.status_code == 201, first.text
        ext_id = first.json()["extension_id"]
        assert first.json()["old_deadline"].startswith("2026-03-11T01:00")
        by_unit = await harness.call(
            "POST", f"/extensions/{ext_id}/approve", **unit, json={"explanation_to_requester": "x"}
        )
        assert by_unit.status_code == 403
        approved = await harness.call(
            "POST",
            f"/extensions/{ext_id}/approve",
            json={"explanation_to_requester": "已电话告知诉求人维修进展、措施及新的办结时限"},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["new_deadline"].startswith("2026-03-20T01:00")
        again = await harness.call(
            "POST", f"/extensions/{ext_id}/reject", json={"reason": "重复审核"}
        )
        assert again.status_code == 409

        second = await harness.call("POST", "/tickets/TJ-EXT/extensions", **unit, json=REQUEST)
        assert second.status_code == 201
        rejected = await harness.call(
            "POST",
            f"/extensions/{second.json()['extension_id']}/reject",
            json={"reason": "已延期一次，应按期办结"},
        )
        assert rejected.status_code == 200
        third = await harness.call("POST", "/tickets/TJ-EXT/extensions", **unit, json=REQUEST)
        assert third.status_code == 409
        assert "at most 2" in third.json()["rule"]
        await settle(ctx)

        clocks = (await harness.call("GET", "/tickets/TJ-EXT/clocks")).json()
        completion = next(c for c in clocks["clocks"] if c["kind"] == "completion")
        assert completion["deadline"].startswith("2026-03-20T01:00")  # rejection kept it
        assert completion["extensions"] == 1
        assert [e["state"] for e in clocks["extensions"]] == ["approved", "rejected"]
        types = [e.type for e in harness.seen if e.ticket_id == "TJ-EXT"]
        assert types.count("sla.extension_requested") == 2
        assert types.count("sla.extension_approved") == 1
        assert types.count("sla.extension_rejected") == 1

        # the moved deadline is the one the scanner keeps
        harness.clock.set(at("2026-03-11 09:30"))
        await settle(ctx)
        assert harness.overdue("TJ-EXT") == []


async def test_urgent_and_consultation_tickets_are_refused_through_the_api(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await open_general_ticket(harness, "TJ-ASK", type_="consultation")
        start = at("2026-03-02 09:00")
        await harness.bus.publish(
            [
                registered("TJ-GAS", "life_safety", when=start),
                dispatched("TJ-GAS", "life_safety", 0, start=start, unit_id="120101-housing"),
                accepted("TJ-GAS", start, unit_id="120101-housing"),
            ]
        )
        await settle(ctx)
        for tid, rule in (("TJ-ASK", "consultation"), ("TJ-GAS", "general-class")):
            r = await harness.call(
                "POST",
                f"/tickets/{tid}/extensions",
                role=Role.UNIT,
                unit_id="120101-housing",
                json=REQUEST,
            )
            assert r.status_code == 409 and rule in r.json()["rule"], r.text


EXPLANATION = {
    "channel": "phone",
    "explained_at": "2026-03-05T10:30:00+08:00",
    "progress": "已现场查看并联系产权单位",
    "measures": "本周内召开业主协调会，确定维修方案",
    "content": "已电话告知诉求人办理进度、解决措施及延期后的办理期限3月20日，诉求人表示理解。",
}


async def test_the_unit_explains_an_approved_extension_to_the_requester(
    harness: Harness,
) -> None:
    """Art 12: 同意延期的，由承办单位向诉求人作出解释 — the unit, after approval, records
    how, when and what it told; not before approval, not twice, not another unit."""
    async with harness.running() as ctx:
        await open_general_ticket(harness, "TJ-EXP")
        await settle(ctx)
        unit = {"role": Role.UNIT, "unit_id": "120101-housing"}
        harness.clock.set(at("2026-03-05 09:00"))
        asked = await harness.call("POST", "/tickets/TJ-EXP/extensions", **unit, json=REQUEST)
        ext_id = asked.json()["extension_id"]
        early = await harness.call(
            "POST", f"/extensions/{ext_id}/explanation", **unit, json=EXPLANATION
        )
        assert early.status_code == 409 and "Art 12" in early.json()["rule"]
        approved = await harness.call("POST", f"/extensions/{ext_id}/approve", json={})
        assert approved.status_code == 200, approved.text
        harness.clock.set(at("2026-03-05 11:00"))
        by_agency = await harness.call(
            "POST", f"/extensions/{ext_id}/explanation", json=EXPLANATION
        )
        assert by_agency.status_code == 403
        by_other = await harness.call(
            "POST",
            f"/extensions/{ext_id}/explanation",
            role=Role.UNIT,
            unit_id="120103-housing",
            json=EXPLANATION,
        )
        assert by_other.status_code == 403
        future = {**EXPLANATION, "explained_at": "2026-03-05T12:00:00+08:00"}
        r = await harness.call("POST", f"/extensions/{ext_id}/explanation", **unit, json=future)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "explained_at"
        assert "Asia/Shanghai" in r.json()["detail"]
        r = await harness.call(
            "POST", f"/extensions/{ext_id}/explanation", **unit, json=EXPLANATION
        )
        assert r.status_code == 200, r.text
        told = r.json()["explanation"]
        assert told["channel"] == "phone" and told["new_deadline"].startswith("2026-03-20T01:00")
        twice = await harness.call(
            "POST", f"/extensions/{ext_id}/explanation", **unit, json=EXPLANATION
        )
        assert twice.status_code == 409
        await settle(ctx)
        [event] = [e for e in harness.seen if e.type == "sla.extension_explained"]
        assert event.payload["unit_id"] == "120101-housing"
        assert event.payload["progress"] == EXPLANATION["progress"]


async def test_a_district_agency_decides_only_its_districts_extensions(harness: Harness) -> None:
    """Art 3: the Hexi work agency may not decide (or read) a Heping ticket's extension;
    the Heping one may, and the city agency may."""
    async with harness.running() as ctx:
        await open_general_ticket(harness, "TJ-HP")  # registered in Heping (120101)
        await settle(ctx)
        unit = {"role": Role.UNIT, "unit_id": "120101-housing"}
        asked = await harness.call("POST", "/tickets/TJ-HP/extensions", **unit, json=REQUEST)
        ext_id = asked.json()["extension_id"]
        hexi = await harness.call(
            "POST", f"/extensions/{ext_id}/approve", json={}, district="120103"
        )
        assert hexi.status_code == 403 and "Art 3" in hexi.json()["rule"]
        assert (
            await harness.call("GET", f"/extensions/{ext_id}", district="120103")
        ).status_code == 403
        board = await harness.call("GET", "/tickets/TJ-HP/clocks", district="120103")
        assert board.status_code == 403
        heping = await harness.call(
            "POST", f"/extensions/{ext_id}/approve", json={}, district="120101"
        )
        assert heping.status_code == 200, heping.text


async def test_the_review_queue_lists_requested_extensions_in_each_callers_scope(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await open_general_ticket(harness, "TJ-Q")  # Heping (120101), unit 120101-housing
        await settle(ctx)
        unit = {"role": Role.UNIT, "unit_id": "120101-housing"}
        asked = await harness.call("POST", "/tickets/TJ-Q/extensions", **unit, json=REQUEST)
        ext_id = asked.json()["extension_id"]

        queue = await harness.call("GET", "/extensions?state=requested")
        assert queue.status_code == 200, queue.text
        assert [e["extension_id"] for e in queue.json()["data"]] == [ext_id]
        assert queue.json()["count"] == 1
        own = await harness.call("GET", "/extensions", **unit)
        assert own.json()["count"] == 1
        other = await harness.call("GET", "/extensions", role=Role.UNIT, unit_id="120103-housing")
        assert other.json()["count"] == 0
        hexi = await harness.call("GET", "/extensions?state=requested", district="120103")
        assert hexi.json()["count"] == 0  # Art 3: not its district
        citizen = await harness.call("GET", "/extensions", role=Role.CITIZEN)
        assert citizen.status_code == 403

        await harness.call("POST", f"/extensions/{ext_id}/reject", json={"reason": "理由不足"})
        after = await harness.call("GET", "/extensions?state=requested")
        assert after.json()["count"] == 0
