"""Art 17: update requests are due in 2 working days (shared calendar: weekends, holidays,
adjusted working days), or 1 calendar day about an emergency; the unit answers by linking
its change; overdue requests are listed and reported once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.knowledge.domain import DEFAULT_SETTINGS, Policy, request_due
from shared.calendar import WorkingCalendar
from tests.conftest import at
from tests.unit.knowledge.conftest import (
    ADMIN,
    AGENCY,
    HEPING,
    HEPING_HOUSING,
    HEXI,
    OPERATOR,
    Harness,
    until,
)

POLICY = Policy(at("2026-01-01 00:00"), DEFAULT_SETTINGS)


@pytest.mark.parametrize(
    ("asked", "emergency", "due"),
    [
        ("2026-03-04 10:00", False, "2026-03-06 10:00"),  # Wed → Fri
        ("2026-03-06 16:00", False, "2026-03-10 16:00"),  # Fri → across the weekend → Tue
        ("2026-03-07 11:00", False, "2026-03-11 00:00"),  # asked on Saturday: from Mon 00:00
        ("2026-04-30 10:00", False, "2026-05-07 10:00"),  # Labour Day holiday 1–5 May
        ("2026-02-13 15:00", False, "2026-02-24 15:00"),  # worked Sat 14 Feb, Spring Festival
        ("2026-04-30 10:00", True, "2026-05-01 10:00"),  # emergency: 1 day, holiday or not
        ("2026-03-07 11:00", True, "2026-03-08 11:00"),
    ],
)
def test_the_due_time_counts_working_days_from_the_shared_calendar(
    asked: str, emergency: bool, due: str
) -> None:
    _, deadline = request_due(WorkingCalendar(), POLICY, at(asked), emergency)
    assert deadline.at == at(due)


async def ask(harness: Harness, **body: Any) -> dict[str, Any]:
    payload = {"action": "correct", "reason": "受理窗口地址已变更", **body}
    r = await harness.call("POST", "/update-requests", AGENCY, payload)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_only_the_agency_asks_and_the_unit_comes_from_the_entry(harness: Harness) -> None:
    created = await harness.create()
    body = {"entry_id": created["entry_id"], "action": "correct", "reason": "地址有误"}
    assert (await harness.call("POST", "/update-requests", HEPING, body)).status_code == 403
    assert (await harness.call("POST", "/update-requests", OPERATOR, body)).status_code == 403
    req = await ask(harness, entry_id=created["entry_id"])
    assert req["unit_id"] == HEPING_HOUSING and req["status"] == "open"
    r = await harness.call(
        "POST", "/update-requests", AGENCY, {**body, "unit_id": "120103-housing"}
    )
    assert r.status_code == 422
    r = await harness.call("POST", "/update-requests", AGENCY, {"action": "add", "reason": "缺"})
    assert r.status_code == 422  # neither an entry nor a unit


async def test_the_unit_answers_by_linking_the_change_it_made(harness: Harness) -> None:
    created = await harness.create()
    entry_id = created["entry_id"]
    harness.clock.advance(timedelta(hours=1))
    req = await ask(harness, entry_id=entry_id)
    path = f"/update-requests/{req['request_id']}/answer"
    # the version that existed before the request is not an answer
    r = await harness.call("POST", path, HEPING, {"entry_id": entry_id, "version": 1})
    assert r.status_code == 422
    assert (await harness.call("POST", path, HEXI, {"entry_id": entry_id})).status_code == 403
    harness.clock.advance(timedelta(hours=2))
    r = await harness.call(
        "PATCH", f"/entries/{entry_id}", HEPING, {"body": "受理窗口已迁至和平区政务服务中心三楼。"}
    )
    assert r.json()["version"] == 2
    r = await harness.call("POST", path, HEPING, {"entry_id": entry_id, "note": "已更正地址"})
    assert r.status_code == 200, r.text
    answered = r.json()
    assert answered["status"] == "answered" and answered["answer_version"] == 2
    assert answered["late"] is False
    assert (await harness.call("POST", path, HEPING, {"entry_id": entry_id})).status_code == 409
    await harness.settle()
    [event] = harness.emitted("knowledge.request_answered", request_id=req["request_id"])
    assert event.payload["entry_version"] == 2


async def test_a_request_for_a_new_entry_is_answered_with_the_new_entry(harness: Harness) -> None:
    req = await ask(harness, unit_id=HEPING_HOUSING, action="add", reason="缺少加装电梯补贴口径")
    harness.clock.advance(timedelta(hours=3))
    created = await harness.create(title="加装电梯补贴口径")
    r = await harness.call(
        "POST",
        f"/update-requests/{req['request_id']}/answer",
        HEPING,
        {"entry_id": created["entry_id"]},
    )
    assert r.status_code == 200 and r.json()["answer_version"] == 1


async def test_an_unanswered_request_is_reported_overdue_once_and_listed(
    harness: Harness,
) -> None:
    # asked Friday 16:00: due Tuesday 16:00, not Sunday
    harness.clock.set(at("2026-03-06 16:00"))
    normal = await ask(harness, unit_id=HEPING_HOUSING)
    urgent = await ask(harness, unit_id=HEPING_HOUSING, emergency=True, reason="寒潮停暖应急口径")
    assert normal["due_at"] == at("2026-03-10 16:00").isoformat().replace("+00:00", "Z")
    harness.clock.set(at("2026-03-07 16:00"))
    await until(lambda: len(harness.emitted("knowledge.request_overdue")) == 1, "urgent overdue")
    harness.clock.set(at("2026-03-10 15:59"))
    await harness.settle()
    assert [e.payload["request_id"] for e in harness.emitted("knowledge.request_overdue")] == [
        urgent["request_id"]
    ]
    harness.clock.set(at("2026-03-10 16:00"))
    await until(lambda: len(harness.emitted("knowledge.request_overdue")) == 2, "normal overdue")
    harness.clock.advance(timedelta(days=3))
    await harness.settle()
    assert len(harness.emitted("knowledge.request_overdue")) == 2

    listed = (await harness.call("GET", "/update-requests?overdue=true", AGENCY)).json()
    assert {r["request_id"] for r in listed["data"]} == {
        normal["request_id"],
        urgent["request_id"],
    }
    assert all(r["overdue"] for r in listed["data"])
    own = (await harness.call("GET", "/update-requests", HEPING)).json()
    assert own["count"] == 2
    assert (await harness.call("GET", "/update-requests", HEXI)).json()["count"] == 0
    r = await harness.call("GET", "/update-requests?unit_id=120101-housing", HEXI)
    assert r.status_code == 403
    # answered late: still recorded, flagged late, still listed as overdue
    created = await harness.create(title="寒潮停暖应急口径")
    r = await harness.call(
        "POST",
        f"/update-requests/{urgent['request_id']}/answer",
        HEPING,
        {"entry_id": created["entry_id"]},
    )
    assert r.json()["late"] is True
    listed = (await harness.call("GET", "/update-requests?overdue=true", ADMIN)).json()
    assert listed["count"] == 2


async def test_overdue_requests_are_reported_after_a_restart(stopped_harness: Harness) -> None:
    h = stopped_harness
    async with h.running():
        req = await ask(h, unit_id=HEPING_HOUSING, emergency=True)
        await h.settle()
    h.clock.advance(timedelta(days=2))
    async with h.running():
        await until(lambda: len(h.emitted("knowledge.request_overdue")) == 1, "overdue")
    async with h.running():
        await h.settle()
        [event] = h.emitted("knowledge.request_overdue")
        assert event.payload["request_id"] == req["request_id"]
