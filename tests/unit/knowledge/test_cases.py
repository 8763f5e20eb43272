"""Cases for training and publicity (Art 25, 30): marked by the agency, anonymised (the
screening detectors plus names and addresses), reviewed by another reviewer, then on the
public case page and in the training library, searched like the knowledge base."""

from __future__ import annotations

from datetime import timedelta

from shared.auth import Caller, Role
from shared.detectors import anonymise
from shared.events import Reply, TicketCompleted
from tests.unit.knowledge.conftest import AGENCY, HEPING, OPERATOR, T0, Harness

REVIEWER = Caller(sub="agency_reviewer", role=Role.AGENCY)
CITIZEN = Caller(sub="citizen_web", role=Role.CITIZEN)

LEAK = {
    "ticket_id": "TJ20260302000117",
    "kind": "excellent",
    "title": "楼上卫生间漏水多方协调快速解决",
    "request": (
        "市民刘芳反映，河西区友谊路街道紫金山路23号华润橡树湾小区3号楼2门501室楼上卫生间"
        "漏水，联系电话13920001234，多次找物业未果。"
    ),
    "handling": "区住建委当日联系物业张伟经理与楼上业主王建国，现场查明防水层破损，督促维修。",
    "result": "三日内完成防水维修，刘芳表示满意。",
    "comment": "多方协调、当日到场，是快速解决邻里漏水纠纷的关键。",
    "names": ["刘芳"],
}


def test_anonymisation_removes_people_phones_and_house_numbers() -> None:
    done = anonymise(LEAK["request"] + LEAK["handling"], names=["刘芳"])
    for personal in ("刘芳", "张伟", "王建国", "13920001234", "23号", "501室", "华润橡树湾"):
        assert personal not in done.text, personal
    assert "刘某" in done.text and "张经理" in done.text and "王某" in done.text
    assert done.replaced["mobile"] == 1 and done.replaced["name"] >= 3


async def test_a_case_is_anonymised_reviewed_by_another_then_public_and_searchable(
    harness: Harness,
) -> None:
    assert (await harness.call("POST", "/cases", HEPING, LEAK)).status_code == 403
    await complete(harness, LEAK["ticket_id"])
    r = await harness.call("POST", "/cases", AGENCY, LEAK)
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["status"] == "draft"
    text = r.text
    for personal in ("刘芳", "张伟", "13920001234", "501室"):
        assert personal not in text
    case_id = draft["case_id"]
    assert (await harness.call("GET", "/cases/public", CITIZEN)).json()["count"] == 0
    own = await harness.call(
        "POST", f"/cases/{case_id}/review", AGENCY, {"approve": True, "note": "同意"}
    )
    assert own.status_code == 409
    r = await harness.call(
        "POST", f"/cases/{case_id}/review", REVIEWER, {"approve": True, "note": "已核对脱敏"}
    )
    assert r.status_code == 200 and r.json()["status"] == "published"

    page = (await harness.call("GET", "/cases/public", CITIZEN)).json()
    assert page["count"] == 1 and page["data"][0]["ticket_id"] is None
    assert page["data"][0]["reviewed_by"] is None
    found = (await harness.call("GET", "/cases?q=卫生间漏水", OPERATOR)).json()
    assert [c["case_id"] for c in found["data"]] == [case_id] and found["data"][0]["score"] > 0
    assert (await harness.call("GET", "/cases?q=供暖不热", OPERATOR)).json()["count"] == 0
    drafts = await harness.call("GET", "/cases?status=draft", OPERATOR)
    assert drafts.status_code == 403


async def complete(harness: Harness, ticket_id: str) -> None:
    """Dispatch reports the ticket completed (办结)."""
    done = T0 + timedelta(days=2)
    reply = Reply(
        policy_basis="《天津市物业管理条例》",
        progress="已维修",
        result="防水层已修复",
        contacted_at=done,
        process="现场查看并协调维修",
        feedback="诉求人满意",
    )
    event = TicketCompleted(
        ticket_id=ticket_id, unit_id="120103-housing", completed_at=done, type="help", reply=reply
    )
    await harness.feed(event.envelope(producer="dispatch", occurred_at=done))


async def test_only_a_completed_ticket_becomes_a_case(harness: Harness) -> None:
    """Art 25: the agency marks completed tickets as cases; one still in handling is refused
    with the reason, and accepted once dispatch reports it completed."""
    refused = await harness.call("POST", "/cases", AGENCY, LEAK)
    assert refused.status_code == 409, refused.text
    assert "not completed" in refused.json()["detail"] and "Art 25" in refused.json()["rule"]
    await complete(harness, LEAK["ticket_id"])
    assert (await harness.call("POST", "/cases", AGENCY, LEAK)).status_code == 201
