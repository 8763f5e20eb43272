"""The dispatch service embedded (SQLite, MemoryBus, ManualClock), driven over HTTP with
signed callers: routing, manual dispatch, suggestions, determinations, co-units, returns,
re-handling and the unit inbox."""

from __future__ import annotations

from datetime import timedelta

from services.dispatch.domain import ART10_1, ART10_3, CROSS_INDUSTRY_RULE, SAME_INDUSTRY_RULE
from tests.unit.dispatch.conftest import MINUTE, T0, Harness, reply

UNCLEAR = "请帮忙处理一下这个情况"


async def queued(service: Harness, district: str = "120101") -> str:
    """A ticket in the manual queue: a matter the catalog does not know, unclear text."""
    tid = await service.register("NEW-404", district, content=UNCLEAR, urgency="general")
    assert (await service.ticket(tid))["state"] == "pending_dispatch"
    return tid


async def dispatch_by_hand(service: Harness, tid: str, unit_id: str, **more: str) -> dict:  # type: ignore[type-arg]
    r = await service.post("operator", f"/tickets/{tid}/dispatch", {"unit_id": unit_id, **more})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# ---- routing --------------------------------------------------------------------------


async def test_the_catalog_routes_the_known_matters(service: Harness) -> None:
    water = await service.register("WATER-001", "120103")
    gas = await service.register("GAS-001", "120101", urgency="life_safety")
    road = await service.register("URBAN-003", "120101", urgency="general")
    for tid, unit in ((water, "city-water"), (gas, "city-gas"), (road, "120101-urban")):
        ticket = await service.ticket(tid)
        assert (ticket["state"], ticket["unit_id"], ticket["dispatch_no"]) == (
            "dispatched",
            unit,
            1,
        )
    [event] = service.events("ticket.dispatched", water)
    assert event.payload["dispatch_no"] == 1 and event.payload["co_unit_ids"] == []


async def test_a_matter_the_catalog_leaves_open_waits_for_determination(service: Harness) -> None:
    tid = await service.register("OTHER-001", "120104", content="小区门口的井盖和路灯都坏了")
    assert (await service.ticket(tid))["state"] == "pending_determination"
    assert service.ticket_events(tid)[-1] == "ticket.pending_determination"
    queue = (await service.get("agency", "/determinations")).json()
    assert tid in [c["ticket_id"] for c in queue["data"]]
    # no unit of any industry is named yet: no industry authority sees the case (Art 8)
    authority = (await service.get("authority", "/determinations")).json()
    assert tid not in [c["ticket_id"] for c in authority["data"]]


async def test_the_agency_dispatches_a_catalog_gap_by_hand_with_a_recorded_reason(
    service: Harness,
) -> None:
    """A matter the catalog names no unit for waits for a determination; the agency may
    instead dispatch it by hand, recording why — the operator may not, nor a disputed
    ticket someone referred."""
    tid = await service.register("OTHER-001", "120104", content="小区门口的井盖和路灯都坏了")
    target = {"unit_id": "120101-urban"}
    by_operator = await service.post("operator", f"/tickets/{tid}/dispatch", target)
    assert by_operator.status_code == 409
    no_reason = await service.post("agency", f"/tickets/{tid}/dispatch", target)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "note"
    reason = "井盖路灯属城市管理职责，目录暂未列明承办单位，先行派城管办理"
    r = await service.post("agency", f"/tickets/{tid}/dispatch", {**target, "note": reason})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "dispatched" and r.json()["unit_id"] == "120101-urban"
    [case] = [d for d in r.json()["determinations"]]
    assert (case["status"], case["decided_by"], case["reason"]) == (
        "dispatched_by_hand",
        "agency",
        reason,
    )
    disputed = await queued(service)
    referred = await service.post(
        "operator",
        f"/tickets/{disputed}/refer",
        {"reason": "住建与城管均称不属本部门", "kind": "cross_industry"},
    )
    assert referred.status_code == 200, referred.text
    r = await service.post("agency", f"/tickets/{disputed}/dispatch", {**target, "note": reason})
    assert r.status_code == 409 and "determination" in r.json()["rule"], r.text


async def test_a_confident_suggestion_dispatches_and_a_weak_one_waits(service: Harness) -> None:
    clear = await service.register("NEW-404", "120103", content="家里没水了，自来水一直停水")
    ticket = await service.ticket(clear)
    assert (ticket["state"], ticket["unit_id"], ticket["matter_code"]) == (
        "dispatched",
        "city-water",
        "WATER-001",
    )
    assert ticket["suggestion"]["confidence"] >= ticket["suggestion"]["threshold"]
    weak = await service.register("NEW-404", "120103", content=UNCLEAR)
    waiting = await service.ticket(weak)
    assert waiting["state"] == "pending_dispatch" and waiting["unit_id"] is None
    assert waiting["suggestion"]["confident"] is False
    assert service.events("ticket.dispatched", weak) == []


async def test_the_suggestion_threshold_is_a_setting(service: Harness) -> None:
    policy = (await service.get("admin", "/policy")).json()["in_force"]["settings"]
    r = await service.post(
        "admin",
        "/policy/versions",
        {
            "effective_from": service.clock.now().isoformat(),
            "settings": {**policy, "suggestion_threshold": 0.99},
        },
    )
    assert r.status_code == 201, r.text
    tid = await service.register("NEW-404", "120103", content="家里没水了，自来水一直停水")
    assert (await service.ticket(tid))["state"] == "pending_dispatch"
    bad = await service.post(
        "admin",
        "/policy/versions",
        {
            "effective_from": service.clock.now().isoformat(),
            "settings": {**policy, "suggestion_threshold": 7},
        },
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "settings"


async def test_suggestions_for_a_text(service: Harness) -> None:
    r = await service.post(
        "operator",
        "/suggestions",
        {"content": "楼道里煤气泄漏，有很重的气味", "district": "120101"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["matter_code"], r.json()["unit_id"]) == ("GAS-001", "city-gas")
    assert (
        await service.post("unit_water", "/suggestions", {"content": "x", "district": "120101"})
    ).status_code == 403


# ---- manual dispatch (Art 8) ----------------------------------------------------------


async def test_an_operator_dispatches_from_the_manual_queue(service: Harness) -> None:
    tid = await queued(service)
    ticket = await dispatch_by_hand(service, tid, "120101-urban", matter_code="URBAN-003")
    assert (ticket["state"], ticket["unit_id"], ticket["matter_code"]) == (
        "dispatched",
        "120101-urban",
        "URBAN-003",
    )
    assert service.events("ticket.dispatched", tid)[0].payload["dispatch_no"] == 1


async def test_manual_dispatch_never_sends_a_functional_only_matter_to_a_street(
    service: Harness,
) -> None:
    tid = await queued(service)
    r = await service.post(
        "operator",
        f"/tickets/{tid}/dispatch",
        {"unit_id": "120101-street", "matter_code": "HOUSE-001"},
    )
    assert r.status_code == 409
    assert r.json()["rule"] == "Art 8: functional_only matters never go to street level"
    assert (await service.ticket(tid))["state"] == "pending_dispatch"


async def test_manual_dispatch_refusals_name_the_field_or_rule(service: Harness) -> None:
    tid = await queued(service)
    unknown = await service.post("operator", f"/tickets/{tid}/dispatch", {"unit_id": "nobody"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "unit_id"
    unit = await service.post("unit_water", f"/tickets/{tid}/dispatch", {"unit_id": "city-water"})
    assert unit.status_code == 403
    disputed = await service.register("OTHER-001", "120101", content=UNCLEAR)
    r = await service.post("operator", f"/tickets/{disputed}/dispatch", {"unit_id": "city-water"})
    assert r.status_code == 409 and "determination" in r.json()["rule"], r.text


# ---- determinations (Art 8) -----------------------------------------------------------


async def test_the_authority_decides_a_same_industry_case(service: Harness) -> None:
    tid = await service.register("OTHER-001", "120101", content="两区交界处楼房墙体开裂")
    agency = await service.post(
        "agency",
        f"/tickets/{tid}/determination",
        {"lead_unit_id": "120101-housing", "reason": "位于和平区"},
    )
    assert agency.status_code == 403 and agency.json()["rule"] == SAME_INDUSTRY_RULE
    no_reason = await service.post(
        "authority",
        f"/tickets/{tid}/determination",
        {"lead_unit_id": "120101-housing", "reason": ""},
    )
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    r = await service.post(
        "authority",
        f"/tickets/{tid}/determination",
        {"lead_unit_id": "120101-housing", "reason": "楼房产权登记在和平区"},
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert (decided["decided_by"], decided["decided_role"], decided["kind"]) == (
        "authority",
        "authority",
        "same_industry",
    )
    assert decided["decided_at"] and decided["reason"] == "楼房产权登记在和平区"
    ticket = await service.ticket(tid)
    assert (ticket["state"], ticket["unit_id"], ticket["determined"]) == (
        "dispatched",
        "120101-housing",
        True,
    )
    assert service.ticket_events(tid)[-2:] == ["ticket.determination_made", "ticket.dispatched"]


JOINT = {
    "lead_unit_id": "120101-urban",
    "co_unit_ids": ["120101-housing"],
    "reason": "违建由城管牵头，住建配合",
}


async def record_positions(service: Harness, tid: str, *parties: str) -> None:
    for who in parties:
        r = await service.post(
            who,
            f"/tickets/{tid}/determination/positions",
            {
                "lead_unit_id": "120101-urban",
                "co_unit_ids": ["120101-housing"],
                "opinion": "违建查处属城管职责，房屋安全鉴定由住建配合",
            },
        )
        assert r.status_code == 200, r.text


async def test_a_cross_industry_case_is_decided_jointly_following_govservice(
    service: Harness,
) -> None:
    """Art 8: 市政务服务部门、热线工作机构会同相关市级行业主管部门共同研究确定主办和协办单位."""
    tid = await service.register("OTHER-001", "120101", content="小区违建导致道路破损")
    authority = await service.post("authority", f"/tickets/{tid}/determination", JOINT)
    assert authority.status_code == 403 and authority.json()["rule"] == CROSS_INDUSTRY_RULE
    alone = await service.post("agency", f"/tickets/{tid}/determination", JOINT)
    assert alone.status_code == 409 and "govservice" in alone.json()["detail"]
    await record_positions(service, tid, "govservice", "agency", "authority_urban")
    heard = (await service.get("operator", f"/tickets/{tid}/determination/positions")).json()
    assert heard["missing"] == ["authority:housing"]
    assert (await service.post("agency", f"/tickets/{tid}/determination", JOINT)).status_code == 409
    await record_positions(service, tid, "authority")
    other = {**JOINT, "lead_unit_id": "120101-housing", "co_unit_ids": ["120101-urban"]}
    r = await service.post("agency", f"/tickets/{tid}/determination", other)
    assert r.status_code == 409 and "government-services department" in r.json()["detail"]
    r = await service.post("govservice", f"/tickets/{tid}/determination", JOINT)
    assert r.status_code == 200, r.text
    [made] = service.events("ticket.determination_made", tid)
    assert made.payload["co_unit_ids"] == ["120101-housing"]
    assert made.payload["decided_role"] == "govservice"
    [dispatched] = service.events("ticket.dispatched", tid)
    assert dispatched.payload["unit_id"] == "120101-urban"
    assert dispatched.payload["co_unit_ids"] == ["120101-housing"]
    late = await service.post(
        "agency_hexi",
        f"/tickets/{tid}/determination/positions",
        {"lead_unit_id": "120101-urban", "opinion": "补充意见"},
    )
    assert late.status_code == 403  # another district's ticket


async def test_an_operator_refers_a_disputed_ticket(service: Harness) -> None:
    tid = await queued(service)
    r = await service.post(
        "operator",
        f"/tickets/{tid}/refer",
        {"reason": "住建与城管均称不属本部门", "kind": "cross_industry"},
    )
    assert r.status_code == 200 and r.json()["state"] == "pending_determination"
    lone = await service.post(
        "agency", f"/tickets/{tid}/determination", {"lead_unit_id": "120101-urban", "reason": "x"}
    )
    assert lone.status_code == 422 and lone.json()["errors"][0]["field"] == "co_unit_ids"


# ---- lead and co-units ----------------------------------------------------------------


async def joint(service: Harness) -> str:
    tid = await service.register("OTHER-001", "120101", content="小区违建导致道路破损")
    await record_positions(service, tid, "govservice", "agency", "authority_urban", "authority")
    r = await service.post(
        "agency",
        f"/tickets/{tid}/determination",
        {"lead_unit_id": "120101-urban", "co_unit_ids": ["120101-housing"], "reason": "联合处置"},
    )
    assert r.status_code == 200, r.text
    return tid


async def test_co_units_see_the_ticket_and_add_input_only_the_lead_replies(
    service: Harness,
) -> None:
    tid = await joint(service)
    seen = await service.get("unit_heping_housing", f"/tickets/{tid}")
    assert seen.status_code == 200 and seen.json()["requester"] is None
    assert (await service.get("unit_hexi_housing", f"/tickets/{tid}")).status_code == 403
    co_accept = await service.post("unit_heping_housing", f"/tickets/{tid}/accept")
    assert co_accept.status_code == 403 and "lead" in co_accept.json()["rule"]
    note = await service.post(
        "unit_heping_housing", f"/tickets/{tid}/inputs", {"text": "该违建未取得规划许可"}
    )
    assert note.status_code == 201, note.text
    lead_note = await service.post("unit_heping_urban", f"/tickets/{tid}/inputs", {"text": "x"})
    assert lead_note.status_code == 403
    assert (await service.post("unit_heping_urban", f"/tickets/{tid}/accept")).status_code == 200
    service.clock.advance(timedelta(hours=2))
    co_reply = await service.post(
        "unit_heping_housing", f"/tickets/{tid}/complete", reply(T0 + timedelta(hours=1))
    )
    assert co_reply.status_code == 403
    done = await service.post(
        "unit_heping_urban", f"/tickets/{tid}/complete", reply(T0 + timedelta(hours=1))
    )
    assert done.status_code == 200, done.text
    ticket = await service.ticket(tid)
    assert [i["text"] for i in ticket["inputs"]] == ["该违建未取得规划许可"]
    inbox = (await service.get("unit_heping_housing", "/inbox", state="completed")).json()
    assert [(i["ticket_id"], i["role"]) for i in inbox["data"]] == [(tid, "co")]


# ---- returns (Art 10) -----------------------------------------------------------------

RETURN = {"reason": "该路段属市管道路，不属本区职责", "basis": "《天津市城市道路管理条例》第八条"}


async def test_a_return_needs_reason_and_basis_and_the_assigned_unit(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    for missing in ("reason", "basis"):
        r = await service.post("unit_water", f"/tickets/{tid}/return", {**RETURN, missing: ""})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == missing
    other = await service.post("unit_heping_housing", f"/tickets/{tid}/return", RETURN)
    assert other.status_code == 403
    assert (await service.post("operator", f"/tickets/{tid}/return", RETURN)).status_code == 403


async def test_no_return_after_acceptance(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    assert (await service.post("unit_water", f"/tickets/{tid}/accept")).status_code == 200
    r = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    assert r.status_code == 409 and r.json()["rule"] == "Art 10: return only before acceptance"


async def test_no_return_after_the_sla_acceptance_deadline(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    # the SLA's deadline (5 min) wins over the 30-min policy fallback
    await service.deadline(tid, "acceptance", T0 + 5 * MINUTE, started_at=T0)
    assert (await service.ticket(tid))["deadline_source"] == "sla"
    service.clock.advance(6 * MINUTE)
    r = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    assert r.status_code == 409
    assert "2026-03-02 09:05:00 Asia/Shanghai" in r.json()["detail"]  # times read in Shanghai
    assert r.json()["rule"] == "Art 10: return only within the acceptance period"


async def test_without_the_sla_deadline_the_policy_period_applies(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    service.clock.advance(31 * MINUTE)  # livelihood: 30 min
    r = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    assert r.status_code == 409 and "acceptance period" in r.json()["rule"]


async def test_approval_is_refused_when_the_catalog_names_the_unit(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    r = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    assert r.status_code == 201, r.text
    assert (await service.ticket(tid))["state"] == "return_review"
    [asked] = service.events("ticket.return_requested", tid)
    assert asked.payload["basis"] == RETURN["basis"]
    approve = await service.post("agency", f"/tickets/{tid}/return/approve", {})
    assert approve.status_code == 409 and approve.json()["rule"] == ART10_1
    assert (await service.ticket(tid))["state"] == "return_review"


async def test_approval_is_refused_when_a_determination_fixed_the_unit(service: Harness) -> None:
    tid = await joint(service)
    r = await service.post("unit_heping_urban", f"/tickets/{tid}/return", RETURN)
    assert r.status_code == 201, r.text
    approve = await service.post("agency", f"/tickets/{tid}/return/approve", {})
    assert approve.status_code == 409 and approve.json()["rule"] == ART10_3


async def test_an_approved_return_is_re_dispatched_per_catalog(service: Harness) -> None:
    tid = await queued(service)
    await dispatch_by_hand(service, tid, "120101-housing", matter_code="URBAN-003")
    assert (
        await service.post("unit_heping_housing", f"/tickets/{tid}/return", RETURN)
    ).status_code == 201
    assert (await service.post("operator", f"/tickets/{tid}/return/approve", {})).status_code == 403
    service.clock.advance(5 * MINUTE)
    r = await service.post("agency", f"/tickets/{tid}/return/approve", {"note": "同意"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["decided_by"] == "agency"
    ticket = await service.ticket(tid)
    assert (ticket["state"], ticket["unit_id"], ticket["dispatch_no"]) == (
        "dispatched",
        "120101-urban",
        2,
    )
    first, second = service.events("ticket.dispatched", tid)
    assert (first.payload["dispatch_no"], second.payload["dispatch_no"]) == (1, 2)
    assert second.payload["dispatched_at"] > first.payload["dispatched_at"]
    assert service.ticket_events(tid)[-2:] == ["ticket.return_approved", "ticket.dispatched"]
    assert (await service.get("unit_heping_housing", f"/tickets/{tid}")).status_code == 403


async def test_an_approved_return_without_another_unit_goes_to_the_manual_queue(
    service: Harness,
) -> None:
    tid = await queued(service)
    await dispatch_by_hand(service, tid, "120101-housing")
    assert (
        await service.post("unit_heping_housing", f"/tickets/{tid}/return", RETURN)
    ).status_code == 201
    assert (await service.post("agency", f"/tickets/{tid}/return/approve", {})).status_code == 200
    ticket = await service.ticket(tid)
    assert (ticket["state"], ticket["unit_id"]) == ("pending_dispatch", None)
    again = await dispatch_by_hand(service, tid, "120101-urban")
    assert again["dispatch_no"] == 2


async def test_a_rejected_return_leaves_the_unit_and_its_clocks(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    before = await service.ticket(tid)
    assert (await service.post("unit_water", f"/tickets/{tid}/return", RETURN)).status_code == 201
    no_reason = await service.post("agency", f"/tickets/{tid}/return/reject", {"reason": ""})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    r = await service.post("agency", f"/tickets/{tid}/return/reject", {"reason": "属供水职责"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    after = await service.ticket(tid)
    assert (after["state"], after["unit_id"], after["dispatched_at"], after["dispatch_no"]) == (
        "dispatched",
        "city-water",
        before["dispatched_at"],
        1,
    )
    [rejected] = service.events("ticket.return_rejected", tid)
    assert rejected.payload["reason"] == "属供水职责"
    again = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    assert again.status_code == 409
    assert (await service.post("unit_water", f"/tickets/{tid}/accept")).status_code == 200


async def test_the_review_queue_lists_pending_returns(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
    queue = (await service.get("agency", "/returns")).json()
    assert [r["ticket_id"] for r in queue["data"]] == [tid]
    assert (await service.get("unit_heping_housing", "/returns")).json()["count"] == 0


# ---- acceptance and the reply (Art 11, 13) --------------------------------------------


async def test_the_reply_needs_every_field_and_a_contact_time_after_acceptance(
    service: Harness,
) -> None:
    tid = await service.register("WATER-001", "120103")
    assert (await service.post("unit_water", f"/tickets/{tid}/accept")).status_code == 200
    service.clock.advance(timedelta(hours=3))
    missing = {k: v for k, v in reply(T0 + MINUTE).items() if k != "policy_basis"}
    r = await service.post("unit_water", f"/tickets/{tid}/complete", missing)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "policy_basis"
    early = await service.post("unit_water", f"/tickets/{tid}/complete", reply(T0 - MINUTE))
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "contacted_at"
    ok = await service.post("unit_water", f"/tickets/{tid}/complete", reply(T0 + MINUTE))
    assert ok.status_code == 200 and ok.json()["state"] == "completed"
    [done] = service.events("ticket.completed", tid)
    assert done.payload["reply"]["result"] == "已恢复供水"


# ---- re-handling (Art 14) -------------------------------------------------------------


async def completed(service: Harness) -> str:
    tid = await service.register("WATER-001", "120103")
    assert (await service.post("unit_water", f"/tickets/{tid}/accept")).status_code == 200
    service.clock.advance(timedelta(hours=1))
    r = await service.post("unit_water", f"/tickets/{tid}/complete", reply(service.clock.now()))
    assert r.status_code == 200, r.text
    return tid


async def test_re_handling_goes_back_to_the_same_unit_once(service: Harness) -> None:
    tid = await completed(service)
    service.clock.advance(timedelta(days=1))
    await service.rehandle(tid, "city-water")
    ticket = await service.ticket(tid)
    assert (ticket["state"], ticket["unit_id"], ticket["round"]) == ("dispatched", "city-water", 2)
    assert service.ticket_events(tid)[-2:] == ["ticket.rehandling_started", "ticket.dispatched"]
    round2 = service.events("ticket.dispatched", tid)[-1]
    assert round2.payload["round"] == 2 and round2.payload["dispatch_no"] == 2
    assert (await service.post("unit_water", f"/tickets/{tid}/accept")).status_code == 200
    service.clock.advance(timedelta(hours=1))
    r = await service.post("unit_water", f"/tickets/{tid}/complete", reply(service.clock.now()))
    assert r.status_code == 200, r.text
    assert [c.payload["round"] for c in service.events("ticket.completed", tid)] == [1, 2]
    assert [x["round"] for x in (await service.ticket(tid))["replies"]] == [1, 2]
    before = len(service.seen)
    await service.rehandle(tid, "city-water")  # a second request is ignored
    assert len(service.seen) == before + 1  # only the request itself
    assert (await service.ticket(tid))["state"] == "completed"


# ---- the unit inbox -------------------------------------------------------------------


async def test_the_inbox_puts_flagged_first_then_the_soonest_deadline(service: Harness) -> None:
    late = await service.register("WATER-001", "120103")
    soon = await service.register("WATER-002", "120103")
    accepted = await service.register("WATER-004", "120103", urgency="general")
    flagged = await service.register("WATER-001", "120103")
    await service.deadline(late, "acceptance", T0 + 50 * MINUTE, started_at=T0)
    await service.deadline(soon, "acceptance", T0 + 10 * MINUTE, started_at=T0)
    await service.deadline(flagged, "acceptance", T0 + 90 * MINUTE, started_at=T0)
    await service.flag(flagged)
    assert (await service.post("unit_water", f"/tickets/{accepted}/accept")).status_code == 200
    await service.deadline(accepted, "completion", T0 + 20 * MINUTE, started_at=T0)
    elsewhere = await service.register("URBAN-003", "120101", urgency="general")
    box = (await service.get("unit_water", "/inbox")).json()
    assert [i["ticket_id"] for i in box["data"]] == [flagged, soon, accepted, late]
    assert box["data"][0]["flagged"] is True
    assert box["data"][2]["due_clock"] == "completion"
    assert box["counts"]["dispatched"] == 3 and box["counts"]["accepted"] == 1
    assert elsewhere not in [i["ticket_id"] for i in box["data"]]
    for_agency = await service.get("agency", "/inbox")
    assert for_agency.status_code == 422 and for_agency.json()["errors"][0]["field"] == "unit_id"
    assert (await service.get("agency", "/inbox", unit_id="city-water")).json()["count"] == 4
    pages = [
        (await service.get("unit_water", "/inbox", limit=1, offset=n)).json() for n in range(5)
    ]
    assert [i["ticket_id"] for p in pages for i in p["data"]] == [flagged, soon, accepted, late]


async def test_a_deadline_of_an_earlier_dispatch_is_ignored(service: Harness) -> None:
    tid = await service.register("WATER-001", "120103")
    await service.deadline(tid, "acceptance", T0 - MINUTE, started_at=T0 - timedelta(hours=1))
    assert (await service.ticket(tid))["deadline_source"] == "policy"


async def test_a_unit_lists_only_its_own_tickets(service: Harness) -> None:
    mine = await service.register("WATER-001", "120103")
    theirs = await service.register("URBAN-003", "120101", urgency="general")
    listed = (await service.get("unit_water", "/tickets", unit_id="120101-urban")).json()
    assert [t["ticket_id"] for t in listed["data"]] == [mine]
    assert (await service.get("unit_water", f"/tickets/{theirs}")).status_code == 403


async def test_a_matter_without_a_unit_in_this_district_is_not_a_determination(
    service: Harness,
) -> None:
    r = await service.post(
        "admin",
        "/catalog/matters",
        {
            "code": "ROAD-098",
            "name": "道路标线不清",
            "keywords": ["标线"],
            "default_urgency": "general",
            "responsible": {"120101": "120101-urban"},
        },
    )
    assert r.status_code == 201, r.text
    tid = await service.register("ROAD-098", "120103", content=UNCLEAR, urgency="general")
    assert (await service.ticket(tid))["state"] == "pending_dispatch"
    assert service.events("ticket.pending_determination", tid) == []


async def test_re_handling_returns_to_the_unit_that_handled_it(service: Harness) -> None:
    tid = await completed(service)
    await service.rehandle(tid, "120101-housing")  # the request names another unit
    ticket = await service.ticket(tid)
    assert (ticket["unit_id"], ticket["round"]) == ("city-water", 2)


# ---- district work agencies (Art 3) ---------------------------------------------------


async def test_a_district_agency_sees_and_acts_on_its_district_only(service: Harness) -> None:
    """Art 3: 区人民政府指定的工作机构负责本行政区域内热线的具体管理工作 — the Hexi
    agency sees Hexi's queue and returns and decides them; Heping's are not its to see;
    the city agency sees both."""
    hexi = await service.register("WATER-001", "120103")
    heping = await service.register("WATER-001", "120101")
    listed = (await service.get("agency_hexi", "/tickets")).json()
    assert {t["ticket_id"] for t in listed["data"]} == {hexi}
    city = (await service.get("agency", "/tickets")).json()
    assert {hexi, heping} <= {t["ticket_id"] for t in city["data"]}
    assert (await service.get("agency_hexi", f"/tickets/{heping}")).status_code == 403
    asked = await service.get("agency_hexi", "/tickets", district="120101")
    assert asked.status_code == 403 and "Art 3" in asked.json()["rule"]

    for tid in (hexi, heping):
        r = await service.post("unit_water", f"/tickets/{tid}/return", RETURN)
        assert r.status_code == 201, r.text
    queue = (await service.get("agency_hexi", "/returns", status="pending")).json()
    assert [r["ticket_id"] for r in queue["data"]] == [hexi]
    refused = await service.post("agency_hexi", f"/tickets/{heping}/return/reject", {"reason": "x"})
    assert refused.status_code == 403
    r = await service.post(
        "agency_hexi", f"/tickets/{hexi}/return/reject", {"reason": "属供水企业职责，请继续办理"}
    )
    assert r.status_code == 200, r.text
    r = await service.post("agency", f"/tickets/{heping}/return/reject", {"reason": "请继续办理"})
    assert r.status_code == 200, r.text


# ---- responsible staff (专人, Art 4) ---------------------------------------------------

STAFF = [
    {"username": "water_zhang", "name": "张伟", "duties": ["accept", "handle", "reply"]},
    {"username": "water_li", "name": "李娜", "duties": ["coordinate"]},
    {"username": "water_wang", "name": "王强", "duties": ["accept", "handle"], "deputy": True},
]


async def test_a_unit_names_its_staff_assigns_a_work_order_and_filters_its_inbox(
    service: Harness,
) -> None:
    """Art 4: 明确专人负责诉求事项的受理、办理、协调、回复等工作."""
    lacking = await service.put("unit_water", "/units/city-water/staff", {"staff": STAFF[1:]})
    assert lacking.status_code == 422 and "accept" in lacking.json()["detail"]
    other = await service.put("unit_gas", "/units/city-water/staff", {"staff": STAFF})
    assert other.status_code == 403
    r = await service.put("unit_water", "/units/city-water/staff", {"staff": STAFF})
    assert r.status_code == 200, r.text
    assert [m["username"] for m in r.json()["staff"]] == ["water_li", "water_wang", "water_zhang"]

    first = await service.register("WATER-001", "120103")
    second = await service.register("WATER-001", "120103")
    no_handler = await service.post(
        "unit_water", f"/tickets/{first}/assignee", {"username": "water_li"}
    )
    assert no_handler.status_code == 422 and no_handler.json()["rule"].startswith("Art 4")
    assert (
        await service.post("unit_gas", f"/tickets/{first}/assignee", {"username": "water_zhang"})
    ).status_code == 403
    r = await service.post("unit_water", f"/tickets/{first}/assignee", {"username": "water_wang"})
    assert r.status_code == 200 and r.json()["assignee"] == "water_wang"
    mine = (await service.get("unit_water", "/inbox", assignee="water_wang")).json()
    assert [i["ticket_id"] for i in mine["data"]] == [first]
    everyone = (await service.get("unit_water", "/inbox")).json()
    assert {first, second} <= {i["ticket_id"] for i in everyone["data"]}
