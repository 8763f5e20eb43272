"""回访 and 再次办理 (Art 14) through the embedded service."""

from __future__ import annotations

from datetime import timedelta

from shared.events import ExtensionApproved, ExtensionExplained
from tests.unit.evaluation.conftest import T0, Evaluation, completed, handled


async def test_a_completed_ticket_opens_a_revisit_due_in_two_working_days(
    service: Evaluation,
) -> None:
    await handled(service, "TJ1")
    r = await service.call("GET", "/revisits/TJ1", "operator")
    assert r.status_code == 200, r.text
    revisit = r.json()
    assert revisit["state"] == "open"
    # completed Mon 11:00 Shanghai → due Wed 11:00 (2 working days, policy setting)
    assert revisit["due_at"] == (T0 + timedelta(hours=2, days=2)).isoformat().replace("+00:00", "Z")


async def test_praise_and_suggestions_are_closed_without_a_revisit(service: Evaluation) -> None:
    await handled(service, "TJP", type_="praise")
    revisit = (await service.call("GET", "/revisits/TJP")).json()
    assert revisit["state"] == "not_required"
    r = await service.call("POST", "/revisits/TJP", json={"rating": "satisfied", "resolved": True})
    assert r.status_code == 409
    await service.feed(completed("TJP", T0 + timedelta(hours=2), type_="praise"))  # again
    [closed] = service.emitted("evaluation.closed", "TJP")
    assert closed.payload["outcome"] == "not_required"


async def test_a_satisfied_first_rating_closes_the_evaluation(service: Evaluation) -> None:
    await handled(service, "TJ2")
    r = await service.call(
        "POST", "/revisits/TJ2", "operator", json={"rating": "satisfied", "resolved": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed"
    assert r.json()["counted_in_satisfaction"] is True
    assert [e.payload["outcome"] for e in service.emitted("evaluation.closed", "TJ2")] == ["rated"]
    again = await service.call(
        "POST", "/revisits/TJ2", json={"rating": "satisfied", "resolved": True}
    )
    assert again.status_code == 409
    r = await service.call(
        "POST", "/revisits/TJ2/decision", json={"decision": "send_back", "reason": "x"}
    )
    assert r.status_code == 409  # only a dissatisfied first rating can be sent back


async def test_a_first_dissatisfied_rating_is_sent_back_once_and_the_second_is_final(
    service: Evaluation,
) -> None:
    await handled(service, "TJ3")
    r = await service.call(
        "POST",
        "/revisits/TJ3",
        json={"rating": "dissatisfied", "resolved": False, "note": "没修好"},
    )
    assert r.json()["state"] == "awaiting_decision"
    assert service.emitted("evaluation.closed", "TJ3") == []

    r = await service.call(
        "POST", "/revisits/TJ3/decision", "operator", json={"decision": "send_back", "reason": "x"}
    )
    assert r.status_code == 403  # the agency decides
    r = await service.call(
        "POST",
        "/revisits/TJ3/decision",
        json={"decision": "send_back", "reason": "水压仍不足"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "sent_back"
    [rehandle] = service.emitted("evaluation.rehandle_requested", "TJ3")
    assert rehandle.payload == {
        "ticket_id": "TJ3",
        "unit_id": "city-water",
        "requested_by": "agency",
        "requested_at": rehandle.payload["requested_at"],
        "reason": "水压仍不足",
    }
    again = await service.call(
        "POST", "/revisits/TJ3/decision", json={"decision": "send_back", "reason": "again"}
    )
    assert again.status_code == 409
    assert "once" in again.json()["rule"]

    # round 2: completed again, rated dissatisfied again — final, and no second send-back
    await service.feed(completed("TJ3", T0 + timedelta(days=1), round_=2))
    r = await service.call(
        "POST", "/revisits/TJ3", json={"rating": "dissatisfied", "resolved": False}
    )
    assert r.json()["round"] == 2 and r.json()["state"] == "closed"
    again = await service.call(
        "POST", "/revisits/TJ3/decision", json={"decision": "send_back", "reason": "again"}
    )
    assert again.status_code == 409
    assert len(service.emitted("evaluation.rehandle_requested", "TJ3")) == 1
    [closed] = service.emitted("evaluation.closed", "TJ3")
    assert closed.payload["round"] == 2 and closed.payload["rating"] == "dissatisfied"


async def test_the_agency_may_close_a_first_dissatisfied_rating_with_a_reason(
    service: Evaluation,
) -> None:
    await handled(service, "TJ4")
    await service.call("POST", "/revisits/TJ4", json={"rating": "dissatisfied", "resolved": True})
    r = await service.call("POST", "/revisits/TJ4/decision", json={"decision": "close"})
    assert r.status_code == 422  # a reason is required
    r = await service.call(
        "POST", "/revisits/TJ4/decision", json={"decision": "close", "reason": "诉求超出政策范围"}
    )
    assert r.json()["state"] == "closed"
    [closed] = service.emitted("evaluation.closed", "TJ4")
    assert closed.payload["outcome"] == "closed_by_agency"
    assert closed.payload["reason"] == "诉求超出政策范围"
    assert service.emitted("evaluation.rehandle_requested", "TJ4") == []


async def test_overdue_revisits_are_listed(service: Evaluation) -> None:
    await handled(service, "TJ5")
    await handled(service, "TJ6", start=T0 + timedelta(days=1))
    service.clock.advance(timedelta(days=2, hours=3))  # TJ5 due Wed 11:00, TJ6 Thu 11:00
    r = await service.call("GET", "/revisits?overdue=true")
    assert [x["ticket_id"] for x in r.json()["data"]] == ["TJ5"]
    assert r.json()["data"][0]["overdue"] is True
    await service.call("POST", "/revisits/TJ5", json={"rating": "satisfied", "resolved": True})
    assert (await service.call("GET", "/revisits?overdue=true")).json()["count"] == 0


async def test_a_unit_sees_only_its_own_revisits(service: Evaluation) -> None:
    await handled(service, "TJ7")
    assert (await service.call("GET", "/revisits/TJ7", "unit_water")).status_code == 200
    assert (await service.call("GET", "/revisits/TJ7", "unit_hexi_housing")).status_code == 403
    r = await service.call("GET", "/revisits?unit_id=city-water", "unit_hexi_housing")
    assert r.status_code == 403
    r = await service.call("GET", "/revisits", "unit_hexi_housing")
    assert r.json()["count"] == 0


async def test_the_same_completion_twice_opens_one_revisit(service: Evaluation) -> None:
    await handled(service, "TJ8")
    await service.feed(completed("TJ8", T0 + timedelta(hours=2)))  # another event id
    assert (await service.call("GET", "/revisits?limit=10")).json()["count"] == 1


async def test_the_revisit_sees_the_units_explanation_of_an_extension(
    service: Evaluation,
) -> None:
    """Art 12: the revisit shows each approved extension and what the unit told the
    requester, or that it has not told them yet."""
    old, new = T0 + timedelta(days=9), T0 + timedelta(days=16)
    approved = ExtensionApproved(
        ticket_id="TJX",
        extension_id="ext-1",
        unit_id="city-water",
        decided_by="agency",
        decided_at=T0 + timedelta(days=5),
        old_deadline=old,
        new_deadline=new,
        explanation_to_requester="",
    )
    await service.feed(approved.envelope(producer="sla", occurred_at=T0 + timedelta(days=5)))
    await handled(service, "TJX")
    [pending] = (await service.call("GET", "/revisits/TJX", "operator")).json()["extensions"]
    assert pending["extension_id"] == "ext-1" and pending["explained_at"] is None
    explained = ExtensionExplained(
        ticket_id="TJX",
        extension_id="ext-1",
        unit_id="city-water",
        channel="phone",
        explained_at=T0 + timedelta(days=5, hours=2),
        progress="已更换主管道阀门",
        measures="周五前完成管网冲洗并复测水质",
        new_deadline=new,
        content="已电话告知诉求人办理进度、解决措施及新的办理期限，诉求人表示理解。",
        recorded_by="unit_water",
    )
    await service.feed(explained.envelope(producer="sla", occurred_at=T0 + timedelta(days=5)))
    [told] = (await service.call("GET", "/revisits/TJX", "operator")).json()["extensions"]
    assert told["explained_via"] == "phone"
    assert told["measures"] == "周五前完成管网冲洗并复测水质"


async def test_a_district_agency_revisits_its_districts_tickets_only(service: Evaluation) -> None:
    """Art 3: TJD is a Hexi (120103) ticket: the Heping work agency neither lists, reads nor
    decides its revisit; the Hexi one does."""
    await handled(service, "TJD")
    assert (await service.call("GET", "/revisits", "agency_heping")).json()["count"] == 0
    assert (await service.call("GET", "/revisits/TJD", "agency_heping")).status_code == 403
    hexi = (await service.call("GET", "/revisits", "agency_hexi")).json()
    assert [r["ticket_id"] for r in hexi["data"]] == ["TJD"]
    rating = {"rating": "dissatisfied", "resolved": False}
    assert (
        await service.call("POST", "/revisits/TJD", "agency_heping", json=rating)
    ).status_code == 403
    assert (
        await service.call("POST", "/revisits/TJD", "agency_hexi", json=rating)
    ).status_code == 200
    send_back = {"decision": "send_back", "reason": "未解决"}
    refused = await service.call("POST", "/revisits/TJD/decision", "agency_heping", json=send_back)
    assert refused.status_code == 403 and "Art 3" in refused.json()["rule"]
