"""Art 18: a unit announces a policy change with its publication time, interpretation and
answer guide; less than 12 hours ahead is accepted but flagged late and counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.knowledge.domain import DEFAULT_SETTINGS, Policy, notice_is_late
from tests.unit.knowledge.conftest import (
    AGENCY,
    HEPING,
    HEPING_HOUSING,
    HEXI,
    OPERATOR,
    T0,
    Harness,
)


def notice(hours_ahead: float, **extra: Any) -> dict[str, Any]:
    return {
        "title": "和平区2026年老旧小区改造补贴政策调整",
        "summary": "补贴标准由每户3000元调整为每户5000元。",
        "publication_at": (T0 + timedelta(hours=hours_ahead)).isoformat(),
        "interpretation": "本次调整适用于2026年纳入改造计划的小区，已完成改造的不追溯。",
        "answer_guide": "市民咨询补贴标准时，答复：自2026年4月1日起每户补贴5000元。",
        "training_offered": True,
        **extra,
    }


def test_less_than_twelve_hours_is_late() -> None:
    policy = Policy(T0, DEFAULT_SETTINGS)
    assert notice_is_late(timedelta(hours=11, minutes=59), policy)
    assert not notice_is_late(timedelta(hours=12), policy)
    assert notice_is_late(timedelta(hours=-2), policy)  # after publication


async def test_a_timely_notice_is_not_late(harness: Harness) -> None:
    r = await harness.call("POST", "/policy-notices", HEPING, notice(12))
    assert r.status_code == 201, r.text
    assert r.json()["late"] is False and r.json()["lead_hours"] == 12.0
    assert r.json()["unit_id"] == HEPING_HOUSING


async def test_a_late_notice_is_accepted_flagged_and_counted_against_the_unit(
    harness: Harness,
) -> None:
    await harness.call("POST", "/policy-notices", HEPING, notice(48))
    r = await harness.call("POST", "/policy-notices", HEPING, notice(11.5))
    assert r.status_code == 201
    late = r.json()
    assert late["late"] is True and late["lead_hours"] == 11.5
    r = await harness.call("POST", "/policy-notices", HEPING, notice(-1))
    assert r.status_code == 201 and r.json()["late"] is True
    await harness.call("POST", "/policy-notices", HEXI, notice(24))

    records = (await harness.call("GET", "/policy-notices/units", AGENCY)).json()["data"]
    assert {(r["unit_id"], r["notices"], r["late"]) for r in records} == {
        ("120101-housing", 3, 2),
        ("120103-housing", 1, 0),
    }
    own = (await harness.call("GET", "/policy-notices/units", HEXI)).json()["data"]
    assert own == [{"unit_id": "120103-housing", "notices": 1, "late": 0}]
    listed = (await harness.call("GET", "/policy-notices?late=true", AGENCY)).json()
    assert listed["count"] == 2
    await harness.settle()
    events = harness.emitted("knowledge.policy_notice_registered", late=True)
    assert len(events) == 2 and events[0].payload["lead_hours"] == 11.5


async def test_a_unit_announces_only_for_itself_and_reads_only_its_own(harness: Harness) -> None:
    r = await harness.call("POST", "/policy-notices", HEPING, notice(24, unit_id="city-water"))
    assert r.status_code == 403
    assert (await harness.call("POST", "/policy-notices", OPERATOR, notice(24))).status_code == 403
    created = (await harness.call("POST", "/policy-notices", HEPING, notice(24))).json()
    path = f"/policy-notices/{created['notice_id']}"
    assert (await harness.call("GET", path, HEXI)).status_code == 403
    assert (await harness.call("GET", path, OPERATOR)).status_code == 200


async def test_a_notice_is_screened_like_an_entry(harness: Harness) -> None:
    r = await harness.call(
        "POST",
        "/policy-notices",
        HEPING,
        notice(24, answer_guide="内部掌握：如有异议请联系科长13812345678"),
    )
    assert r.status_code == 422
    kinds = [(f["kind"], f["field"]) for f in r.json()["findings"]]
    assert kinds == [
        ("classification_marking", "answer_guide"),
        ("mobile", "answer_guide"),
    ]
