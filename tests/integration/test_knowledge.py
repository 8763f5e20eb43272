"""The knowledge base on the real PostgreSQL and Kafka, every service its own process,
driven through the gateway: caps, ownership, versions, screening, Chinese search and
suggestions, expiry exactly once across a crash, update-request deadlines across a weekend
and a holiday, late policy notices. The knowledge clock is moved, never waited for."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.events import Envelope
from tests.conftest import at
from tests.integration.conftest import System, eventually
from tests.unit.knowledge.corpus import CORPUS, QUERIES, TICKETS, corpus_entry

pytestmark = pytest.mark.asyncio(loop_scope="module")

KB = "/api/v1/knowledge"
HEPING = "unit_heping_housing"
WATER = "unit_water"


async def set_clock(system: System, when: datetime) -> None:
    async with system.client("admin") as admin:
        r = await admin.put(f"{KB}/internal/clock", json={"now": when.isoformat()})
    assert r.status_code == 200, r.text


async def call(system: System, user: str, method: str, path: str, body: Any = None) -> Any:
    async with system.client(user) as client:
        return await client.request(method, f"{KB}{path}", json=body)


def near(value: str, expected: datetime) -> bool:
    """The service clock runs on from where a test set it: allow the seconds that passed."""
    return abs(datetime.fromisoformat(value) - expected) < timedelta(seconds=10)


def guide(start: datetime, days: int = 90, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "service_guide",
        "title": "和平区老旧小区加装电梯申请流程",
        "body": "加装电梯须经本单元双三分之二以上业主同意，向街道提交申请。",
        "legal_basis": "《天津市既有住宅加装电梯工作实施方案》",
        "scope": "和平区",
        "applicable_subjects": "住宅业主",
        "conditions": "满足规划、消防和结构安全要求",
        "faq": [{"question": "需要多少业主同意？", "answer": "双三分之二以上。"}],
        "matter_codes": ["HOUSING-002"],
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(days=days)).isoformat(),
        **extra,
    }


async def knowledge_events(system: System, event_type: str, **payload: Any) -> list[Envelope]:
    return [
        e
        for e in await system.events("hotline.knowledge")
        if e.type == event_type and all(e.payload.get(k) == v for k, v in payload.items())
    ]


async def test_caps_ownership_and_versions(system: System) -> None:
    start = at("2026-03-02 09:00")
    await set_clock(system, start)
    r = await call(system, HEPING, "POST", "/entries", guide(start, days=366))
    assert r.status_code == 422 and r.json()["cap_months"] == 12
    r = await call(system, HEPING, "POST", "/entries", guide(start, unit_id="city-water"))
    assert r.status_code == 403
    r = await call(system, HEPING, "POST", "/entries", guide(start))
    assert r.status_code == 201, r.text
    entry_id = r.json()["entry_id"]
    r = await call(system, WATER, "PATCH", f"/entries/{entry_id}", {"body": "水务集团改写"})
    assert r.status_code == 403
    r = await call(
        system, HEPING, "PATCH", f"/entries/{entry_id}", {"body": "加装电梯须经业主同意并公示。"}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    versions = (await call(system, HEPING, "GET", f"/entries/{entry_id}/versions")).json()
    assert [(v["version"], v["change"]) for v in versions["data"]] == [
        (1, "created"),
        (2, "edited"),
    ]
    shown = (await call(system, "agency", "GET", f"/entries/{entry_id}/versions/2")).json()
    assert shown["changed_fields"] == ["body"] and shown["changed_by"] == HEPING
    assert (await call(system, WATER, "GET", f"/entries/{entry_id}/versions")).status_code == 403


async def test_screening_refuses_with_every_finding_and_saves_nothing(system: System) -> None:
    start = at("2026-03-02 09:00")
    await set_clock(system, start)
    body = guide(
        start,
        title="加装电梯咨询（内部口径）",
        body="经办人手机13812345678，身份证120101199003074516，邮箱jingban@163.com。",
    )
    r = await call(system, HEPING, "POST", "/entries", body)
    assert r.status_code == 422
    assert [(f["kind"], f["field"]) for f in r.json()["findings"]] == [
        ("classification_marking", "title"),
        ("mobile", "body"),
        ("resident_id", "body"),
        ("email", "body"),
    ]
    r = await call(system, "admin", "GET", "/search?q=内部口径&include_invalid=true")
    assert r.json()["data"] == []
    ordinary = guide(start, body="2026年3月1日起每台补贴20万元，咨询022-12345或12345热线。")
    assert (await call(system, HEPING, "POST", "/entries", ordinary)).status_code == 201


async def test_chinese_search_and_suggest_on_postgresql(system: System) -> None:
    start = at("2026-04-01 09:00")
    await set_clock(system, start)
    until = (start + timedelta(days=150)).isoformat()
    ids = {}
    for key in CORPUS:
        r = await call(
            system, "agency", "POST", "/entries", corpus_entry(key, start.isoformat(), until)
        )
        assert r.status_code == 201, r.text
        ids[key] = r.json()["entry_id"]
    misses = []
    for question, key in QUERIES:
        r = await call(system, "operator", "GET", f"/search?q={question}&limit=3")
        assert r.status_code == 200, r.text
        if ids[key] not in [d["entry_id"] for d in r.json()["data"]]:
            misses.append((question, key))
    assert not misses
    for text, matter, key in TICKETS:
        r = await call(
            system, "operator", "POST", "/suggest", {"text": text, "matter_code": matter}
        )
        assert r.json()["data"][0]["entry_id"] == ids[key], text
    # the index follows a withdrawal at once
    await call(system, "agency", "POST", f"/entries/{ids['gas_leak']}/withdraw", {"reason": "更新"})
    r = await call(system, "operator", "GET", "/search?q=燃气泄漏")
    assert ids["gas_leak"] not in [d["entry_id"] for d in r.json()["data"]]
    r = await call(system, "operator", "GET", "/search?q=燃气泄漏&include_invalid=true")
    assert r.status_code == 403


async def test_expiry_is_emitted_exactly_once_across_a_crash(system: System) -> None:
    start = at("2026-05-11 09:00")
    await set_clock(system, start)
    r = await call(system, HEPING, "POST", "/entries", guide(start, days=40, title="到期测试指南"))
    entry_id = r.json()["entry_id"]
    valid_until = datetime.fromisoformat(r.json()["valid_until"])

    await set_clock(system, valid_until - timedelta(days=30))
    await eventually(
        lambda: knowledge_events(system, "knowledge.expiring", entry_id=entry_id), "reminder"
    )
    system.kill("knowledge")  # crash: the end of validity passes while it is down
    system.start("knowledge")
    await system.wait_ready("knowledge")
    await set_clock(system, valid_until + timedelta(minutes=5))
    [expired] = await eventually(
        lambda: knowledge_events(system, "knowledge.expired", entry_id=entry_id), "expiry"
    )
    got = (await call(system, HEPING, "GET", f"/entries/{entry_id}")).json()
    assert got["status"] == "expired"
    assert (await call(system, "operator", "GET", f"/entries/{entry_id}")).status_code == 403

    system.kill("knowledge")
    system.start("knowledge")
    await system.wait_ready("knowledge")
    await set_clock(system, valid_until + timedelta(days=3))
    await asyncio.sleep(1.5)  # give a would-be duplicate time to reach the bus
    assert len(await knowledge_events(system, "knowledge.expired", entry_id=entry_id)) == 1
    assert len(await knowledge_events(system, "knowledge.expiring", entry_id=entry_id)) == 1
    assert expired.payload["valid_until"] == valid_until.isoformat().replace("+00:00", "Z")


async def test_update_requests_across_a_weekend_and_a_holiday(system: System) -> None:
    async def ask(**body: Any) -> dict[str, Any]:
        payload = {"unit_id": "120101-housing", "action": "correct", "reason": "地址已变更"}
        r = await call(system, "agency", "POST", "/update-requests", {**payload, **body})
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    await set_clock(system, at("2026-03-06 16:00"))  # a Friday
    weekend = await ask()
    assert near(weekend["due_at"], at("2026-03-10 16:00"))
    await set_clock(system, at("2026-04-30 10:00"))  # before the Labour Day holiday
    holiday = await ask()
    emergency = await ask(emergency=True, reason="汛期应急口径")
    assert near(holiday["due_at"], at("2026-05-07 10:00"))
    assert near(emergency["due_at"], at("2026-05-01 10:00"))

    await set_clock(system, at("2026-05-02 10:00"))
    await eventually(
        lambda: knowledge_events(
            system, "knowledge.request_overdue", request_id=emergency["request_id"]
        ),
        "emergency request overdue",
    )
    assert not await knowledge_events(
        system, "knowledge.request_overdue", request_id=holiday["request_id"]
    )
    r = await call(system, HEPING, "GET", "/update-requests?overdue=true")
    overdue_ids = {x["request_id"] for x in r.json()["data"]}
    assert {weekend["request_id"], emergency["request_id"]} <= overdue_ids
    assert holiday["request_id"] not in overdue_ids
    r = await call(system, WATER, "GET", f"/update-requests/{holiday['request_id']}")
    assert r.status_code == 403


async def test_a_late_policy_notice_is_flagged_and_counted(system: System) -> None:
    now = at("2026-06-01 09:00")
    await set_clock(system, now)
    notice = {
        "title": "和平区老旧小区改造补贴调整",
        "summary": "补贴标准调整为每户5000元。",
        "publication_at": (now + timedelta(hours=6)).isoformat(),
        "interpretation": "适用于2026年纳入计划的小区。",
        "answer_guide": "答复：自7月1日起每户补贴5000元。",
    }
    r = await call(system, HEPING, "POST", "/policy-notices", notice)
    assert r.status_code == 201 and r.json()["late"] is True
    timely = {**notice, "publication_at": (now + timedelta(hours=13)).isoformat()}
    r = await call(system, HEPING, "POST", "/policy-notices", timely)
    assert r.json()["late"] is False
    records = (await call(system, "agency", "GET", "/policy-notices/units")).json()["data"]
    assert {"unit_id": "120101-housing", "notices": 2, "late": 1} in records
    [event] = await eventually(
        lambda: knowledge_events(system, "knowledge.policy_notice_registered", late=True),
        "late notice event",
    )
    assert event.payload["lead_hours"] == 6.0
