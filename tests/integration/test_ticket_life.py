"""The whole life of a ticket through the gateway, as an integrator drives it, on the real
Kafka and PostgreSQL with every service its own process: register → dispatch → return
requested and rejected → accept → reply → rated dissatisfied → sent back → re-handled →
reply → rated (final) — and the timeline shows it all, in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.integration.conftest import System, eventually
from tests.integration.test_ticket_flow import assignment, register

pytestmark = pytest.mark.asyncio(loop_scope="module")

STAIRWELL_LEAK = {
    "channel": "web",
    "type": "complaint",
    "matter_code": "HOUSE-001",
    "district": "120101",
    "address": "和平区劝业场街道滨江道某小区5号楼",
    "content": "楼道墙体开裂渗水已经两个月，多次找物业未解决",
    "requester": {"name": "周强", "phone": "13820005678"},
}


def reply(contacted_at: str, result: str) -> dict[str, str]:
    return {
        "policy_basis": "《天津市物业管理条例》第五十六条",
        "progress": "已联系物业与施工单位现场勘查",
        "result": result,
        "contacted_at": contacted_at,
        "process": "接单后当日到场勘查，督促物业维修墙体并做防水处理",
        "feedback": "诉求人表示知晓",
    }


async def call(system: System, user: str, method: str, path: str, **kw: Any) -> Any:
    async with system.client(user) as client:
        r = await client.request(method, path, **kw)
    return r


async def revisit(system: System, tid: str, round_: int) -> dict[str, Any] | None:
    r = await call(system, "operator", "GET", f"/api/v1/evaluation/revisits/{tid}")
    if r.status_code == 200 and r.json()["round"] == round_:
        return r.json()  # type: ignore[no-any-return]
    return None


async def complete(system: System, tid: str, result: str) -> None:
    accepted = await call(
        system, "unit_heping_housing", "POST", f"/api/v1/dispatch/tickets/{tid}/accept"
    )
    assert accepted.status_code == 200, accepted.text
    done = await call(
        system,
        "unit_heping_housing",
        "POST",
        f"/api/v1/dispatch/tickets/{tid}/complete",
        json=reply(accepted.json()["accepted_at"], result),
    )
    assert done.status_code == 200, done.text


async def test_the_whole_life_of_a_ticket(system: System) -> None:
    tid = (await register(system, STAIRWELL_LEAK))["ticket_id"]
    first = await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    assert first["unit_id"] == "120101-housing"

    # the unit asks to return it; the catalog names it as responsible, so the agency rejects
    asked = await call(
        system,
        "unit_heping_housing",
        "POST",
        f"/api/v1/dispatch/tickets/{tid}/return",
        json={"reason": "墙体开裂属开发商保修范围", "basis": "商品房保修规定"},
    )
    assert asked.status_code == 201, asked.text
    approve = await call(
        system, "agency", "POST", f"/api/v1/dispatch/tickets/{tid}/return/approve", json={}
    )
    assert approve.status_code == 409, approve.text  # Art 10 (1): catalog names the unit
    rejected = await call(
        system,
        "agency",
        "POST",
        f"/api/v1/dispatch/tickets/{tid}/return/reject",
        json={"reason": "房屋质量问题属区住建委职责"},
    )
    assert rejected.status_code == 200, rejected.text

    await complete(system, tid, "已督促物业完成墙体修补")
    await eventually(lambda: revisit(system, tid, 1), "first revisit")
    rated = await call(
        system,
        "operator",
        "POST",
        f"/api/v1/evaluation/revisits/{tid}",
        json={"rating": "dissatisfied", "resolved": False, "note": "仍有渗水"},
    )
    assert rated.status_code == 200, rated.text
    sent = await call(
        system,
        "agency",
        "POST",
        f"/api/v1/evaluation/revisits/{tid}/decision",
        json={"decision": "send_back", "reason": "渗水问题未解决"},
    )
    assert sent.status_code == 200, sent.text

    async def round_two() -> dict[str, Any] | None:
        found = await assignment(system, tid, "dispatched")
        return found if found and found["round"] == 2 else None

    again = await eventually(round_two, "re-handling dispatch")
    assert again["unit_id"] == "120101-housing"
    await complete(system, tid, "已完成外墙防水施工，渗水消除")
    await eventually(lambda: revisit(system, tid, 2), "second revisit")
    final = await call(
        system,
        "operator",
        "POST",
        f"/api/v1/evaluation/revisits/{tid}",
        json={"rating": "basically_satisfied", "resolved": True},
    )
    assert final.status_code == 200, final.text
    no_more = await call(
        system,
        "agency",
        "POST",
        f"/api/v1/evaluation/revisits/{tid}/decision",
        json={"decision": "send_back", "reason": "再次退回"},
    )
    assert no_more.status_code == 409  # the second rating is final

    # clocks: two rounds, re-handling clocks from the re-dispatch. The revisit above shows
    # that evaluation heard the second completion; the SLA is another consumer group and
    # may hear it later, so its clocks are waited for, not read once.
    met = [
        ("acceptance", 1, "met"),
        ("acceptance", 2, "met"),
        ("completion", 1, "met"),
        ("completion", 2, "met"),
        ("dispatch", 1, "met"),
    ]

    async def all_met() -> bool:
        r = await call(system, "operator", "GET", f"/api/v1/sla/tickets/{tid}/clocks")
        return sorted((c["kind"], c["round"], c["state"]) for c in r.json()["clocks"]) == met

    await eventually(all_met, f"the SLA's clocks {met}")

    async def full_timeline() -> list[str] | None:
        r = await call(system, "agency", "GET", f"/api/v1/tickets/{tid}/timeline")
        types = [e["type"] for e in r.json()["events"]] if r.status_code == 200 else []
        return (
            types
            if "evaluation.revisit_recorded" in types
            and types.count("evaluation.revisit_recorded") == 2
            else None
        )

    types = await eventually(full_timeline, "timeline")
    expected_order = [
        "ticket.registered",
        "ticket.dispatched",
        "ticket.return_requested",
        "ticket.return_rejected",
        "ticket.accepted",
        "ticket.completed",
        "evaluation.revisit_recorded",
        "evaluation.rehandle_requested",
        "ticket.rehandling_started",
        "ticket.accepted",
        "ticket.completed",
        "evaluation.revisit_recorded",
    ]
    milestones = [t for t in types if t in set(expected_order)]
    positions = iter(range(len(milestones)))
    for wanted in expected_order:  # each milestone appears, in this order
        assert any(milestones[i] == wanted for i in positions), (wanted, milestones)
    assert "sla.deadline_set" in types

    # the timeline is scoped: another unit may not read it
    other = await call(system, "unit_hexi_housing", "GET", f"/api/v1/tickets/{tid}/timeline")
    assert other.status_code == 403
    own = await call(system, "unit_heping_housing", "GET", f"/api/v1/tickets/{tid}/timeline")
    assert own.status_code == 200
    stamps = [datetime.fromisoformat(e["occurred_at"]) for e in own.json()["events"]]
    assert stamps == sorted(stamps)


WALL_CRACK = {
    **STAIRWELL_LEAK,
    "content": "外墙瓷砖大面积空鼓脱落，维修需要业主共同出资，物业迟迟不启动",
    "requester": {"name": "吴敏", "phone": "13820007788"},
}
MANHOLE = {
    "channel": "web",
    "type": "report",
    "matter_code": "OTHER-001",
    "district": "120104",
    "address": "南开区长虹街道某路口",
    "content": "路口井盖破损下沉，旁边路灯也不亮，晚上很危险",
    "requester": {"name": "郑磊", "phone": "13820009911"},
}


async def test_extension_explained_by_the_unit_district_scope_and_a_joint_determination(
    system: System,
) -> None:
    """Art 12: the unit explains an approved extension, the revisit sees it. Art 3: the Hexi
    district work agency cannot see a Heping ticket. Art 8: a cross-industry case decided
    jointly, following the government-services department's position."""
    await system.login("agency_hexi", "govservice", "authority", "authority_urban")
    tid = (await register(system, WALL_CRACK))["ticket_id"]
    await eventually(lambda: assignment(system, tid, "dispatched"), "dispatch")
    unit = "unit_heping_housing"
    accepted = await call(system, unit, "POST", f"/api/v1/dispatch/tickets/{tid}/accept")
    assert accepted.status_code == 200, accepted.text

    async def extension_asked() -> Any:
        r = await call(
            system,
            unit,
            "POST",
            f"/api/v1/sla/tickets/{tid}/extensions",
            json={
                "reason": "外墙维修须业主表决维修资金",
                "progress": "已现场勘查并组织业主协商",
                "measures": "召开业主大会表决使用维修资金",
            },
        )
        return r.json() if r.status_code == 201 else None

    asked = await eventually(extension_asked, "the completion clock")
    ext = asked["extension_id"]
    approved = await call(
        system, "agency", "POST", f"/api/v1/sla/extensions/{ext}/approve", json={}
    )
    assert approved.status_code == 200, approved.text
    explained = await call(
        system,
        unit,
        "POST",
        f"/api/v1/sla/extensions/{ext}/explanation",
        json={
            "channel": "phone",
            "explained_at": approved.json()["decided_at"],
            "progress": "已组织业主协商维修方案",
            "measures": "本月内召开业主大会表决维修资金使用",
            "content": "已电话告知诉求人办理进度、解决措施及延期后的办理期限，诉求人表示理解。",
        },
    )
    assert explained.status_code == 200, explained.text

    # Art 3: the Hexi work agency does not see or act on this Heping ticket; the city agency does
    hexi_view = await call(system, "agency_hexi", "GET", f"/api/v1/dispatch/tickets/{tid}")
    assert hexi_view.status_code == 403 and "Art 3" in hexi_view.json()["rule"]
    hexi_list = await call(system, "agency_hexi", "GET", "/api/v1/dispatch/tickets")
    assert tid not in [t["ticket_id"] for t in hexi_list.json()["data"]]
    hexi_ext = await call(system, "agency_hexi", "GET", f"/api/v1/sla/extensions/{ext}")
    assert hexi_ext.status_code == 403
    city = await call(system, "agency", "GET", f"/api/v1/tickets/{tid}")
    assert city.status_code == 200 and city.json()["state"] == "accepted"

    await complete_accepted(system, tid, accepted.json()["accepted_at"])

    async def revisit_sees_it() -> Any:
        seen = await revisit(system, tid, 1)
        if seen and seen["extensions"] and seen["extensions"][0]["explained_via"]:
            return seen
        return None

    seen = await eventually(revisit_sees_it, "the explanation at the revisit")
    assert seen["extensions"][0]["measures"] == "本月内召开业主大会表决维修资金使用"

    # Art 8: a matter the catalog names no unit for, decided jointly across industries
    manhole = (await register(system, MANHOLE))["ticket_id"]
    await eventually(lambda: assignment(system, manhole, "pending_determination"), "referral")
    proposal = {
        "lead_unit_id": "120104-urban",
        "co_unit_ids": ["120104-housing"],
        "opinion": "井盖路灯由城管牵头，涉及小区管网的由住建配合",
    }
    for who in ("govservice", "agency", "authority_urban"):
        r = await call(
            system,
            who,
            "POST",
            f"/api/v1/dispatch/tickets/{manhole}/determination/positions",
            json=proposal,
        )
        assert r.status_code == 200, (who, r.text)
    decision = {
        "lead_unit_id": "120104-urban",
        "co_unit_ids": ["120104-housing"],
        "reason": "市政务服务部门、热线工作机构会同行业主管部门共同研究确定",
    }
    early = await call(
        system,
        "govservice",
        "POST",
        f"/api/v1/dispatch/tickets/{manhole}/determination",
        json=decision,
    )
    assert early.status_code == 409 and "authority:housing" in early.json()["detail"]
    r = await call(
        system,
        "authority",
        "POST",
        f"/api/v1/dispatch/tickets/{manhole}/determination/positions",
        json=proposal,
    )
    assert r.status_code == 200, r.text
    decided = await call(
        system,
        "govservice",
        "POST",
        f"/api/v1/dispatch/tickets/{manhole}/determination",
        json=decision,
    )
    assert decided.status_code == 200, decided.text
    done = await eventually(lambda: assignment(system, manhole, "dispatched"), "joint dispatch")
    assert done["unit_id"] == "120104-urban" and done["co_unit_ids"] == ["120104-housing"]


async def complete_accepted(system: System, tid: str, accepted_at: str) -> None:
    done = await call(
        system,
        "unit_heping_housing",
        "POST",
        f"/api/v1/dispatch/tickets/{tid}/complete",
        json=reply(accepted_at, "已组织业主表决并完成外墙维修"),
    )
    assert done.status_code == 200, done.text
