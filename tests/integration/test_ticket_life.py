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

    # clocks: two rounds, re-handling clocks from the re-dispatch
    clocks = (await call(system, "operator", "GET", f"/api/v1/sla/tickets/{tid}/clocks")).json()
    assert sorted((c["kind"], c["round"], c["state"]) for c in clocks["clocks"]) == [
        ("acceptance", 1, "met"),
        ("acceptance", 2, "met"),
        ("completion", 1, "met"),
        ("completion", 2, "met"),
        ("dispatch", 1, "met"),
    ]

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
