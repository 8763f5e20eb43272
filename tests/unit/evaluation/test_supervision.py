"""督办 (Art 21): supervision from SLA escalations (exactly once; written → the parent
unit) and by hand; the addressed unit answers; open supervision is listed."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.evaluation.conftest import T0, Evaluation, dispatched, escalated, registered

H, PARENT = "120103-housing", "city-housing"


async def test_escalation_levels_open_a_ticket_then_a_written_supervision_once_each(
    service: Evaluation,
) -> None:
    await service.feed(registered("TJ1"), dispatched("TJ1", T0 + timedelta(minutes=5), H))
    level1 = escalated("TJ1", 1, T0 + timedelta(days=1))
    await service.feed(level1, level1)  # redelivered
    await service.feed(escalated("TJ1", 1, T0 + timedelta(days=1)))  # same fact, new event id
    await service.feed(escalated("TJ1", 2, T0 + timedelta(days=2)))
    opened = service.emitted("supervision.opened", "TJ1")
    assert [
        (e.payload["kind"], e.payload["unit_id"], e.payload["subject_unit_id"]) for e in opened
    ] == [
        ("ticket", H, H),
        ("written", PARENT, H),  # 逐级负责: the written one goes to the parent
    ]
    assert all(e.payload["source"] == "escalation" for e in opened)
    r = await service.call("GET", "/supervisions?state=open")
    assert r.json()["count"] == 2


async def test_a_unit_without_a_known_parent_answers_its_written_supervision_itself(
    service: Evaluation,
) -> None:
    await service.feed(escalated("TJ2", 2, T0 + timedelta(days=2), unit="city-water"))
    [opened] = service.emitted("supervision.opened", "TJ2")
    assert opened.payload["unit_id"] == "city-water"


async def test_the_addressed_unit_answers_and_the_agency_closes(service: Evaluation) -> None:
    await service.feed(escalated("TJ3", 2, T0 + timedelta(days=2)))
    [opened] = service.emitted("supervision.opened", "TJ3")
    sid = opened.payload["supervision_id"]
    answer = {"answer": "已责成河西区住建委当日办结"}
    # the supervised unit sees it but the parent answers
    assert (
        await service.call("GET", f"/supervisions/{sid}", "unit_hexi_housing")
    ).status_code == 200
    r = await service.call("POST", f"/supervisions/{sid}/answer", "unit_hexi_housing", json=answer)
    assert r.status_code == 403
    assert (await service.call("GET", f"/supervisions/{sid}", "unit_water")).status_code == 403
    r = await service.call("POST", f"/supervisions/{sid}/answer", "unit_city_housing", json=answer)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "answered" and r.json()["unit_name"] == "天津市住房和城乡建设委员会"
    again = await service.call(
        "POST", f"/supervisions/{sid}/answer", "unit_city_housing", json=answer
    )
    assert again.status_code == 409
    assert len(service.emitted("supervision.answered", "TJ3")) == 1
    assert (await service.call("GET", "/supervisions?state=open")).json()["count"] == 0
    r = await service.call("POST", f"/supervisions/{sid}/close", json={"note": "核实无误"})
    assert r.json()["state"] == "closed"
    assert len(service.emitted("supervision.closed", "TJ3")) == 1


async def test_the_agency_opens_supervision_by_hand(service: Evaluation) -> None:
    await service.feed(registered("TJ4"), dispatched("TJ4", T0 + timedelta(minutes=5), H))
    body = {"kind": "onsite", "ticket_id": "TJ4", "reason": "多次投诉，现场核查"}
    assert (await service.call("POST", "/supervisions", "unit_water", json=body)).status_code == 403
    r = await service.call("POST", "/supervisions", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["unit_id"], r.json()["source"]) == (H, "manual")
    # due after the policy's answer period (2 working days)
    assert r.json()["due_at"] > r.json()["opened_at"]
    written = {"kind": "written", "unit_id": H, "reason": "专项整改"}
    r = await service.call("POST", "/supervisions", json=written)
    assert r.json()["unit_id"] == PARENT
    bad = await service.call("POST", "/supervisions", json={"kind": "special", "reason": "x"})
    assert bad.status_code == 422
    bad = await service.call(
        "POST", "/supervisions", json={"kind": "special", "unit_id": "nope", "reason": "x"}
    )
    assert bad.status_code == 422
    bad = await service.call(
        "POST", "/supervisions", json={"kind": "phone", "unit_id": H, "reason": "x"}
    )
    assert bad.status_code == 422


async def test_overdue_supervision_is_marked(service: Evaluation) -> None:
    await service.feed(escalated("TJ5", 1, T0))
    service.clock.advance(timedelta(days=3))
    [row] = (await service.call("GET", "/supervisions?state=open")).json()["data"]
    assert row["overdue"] is True
    listed = await service.call("GET", "/supervisions", "unit_hexi_housing")
    assert listed.json()["count"] == 1
    assert (await service.call("GET", "/supervisions", "unit_water")).json()["count"] == 0


async def test_a_district_agency_supervises_its_district_only(service: Evaluation) -> None:
    """Art 3: TJ9 is a Hexi (120103) ticket: the Heping work agency may neither open nor
    see its supervision; the Hexi one may."""
    await service.feed(registered("TJ9"), dispatched("TJ9", T0 + timedelta(minutes=5), H))
    body = {"kind": "ticket", "ticket_id": "TJ9", "reason": "群众反映强烈"}
    refused = await service.call("POST", "/supervisions", "agency_heping", json=body)
    assert refused.status_code == 403 and "Art 3" in refused.json()["rule"]
    r = await service.call("POST", "/supervisions", "agency_hexi", json=body)
    assert r.status_code == 201, r.text
    sid = r.json()["supervision_id"]
    assert (await service.call("GET", "/supervisions", "agency_heping")).json()["count"] == 0
    assert (await service.call("GET", "/supervisions", "agency_hexi")).json()["count"] == 1
    assert (await service.call("GET", f"/supervisions/{sid}", "agency_heping")).status_code == 403
    close = await service.call(
        "POST", f"/supervisions/{sid}/close", "agency_heping", json={"note": "x"}
    )
    assert close.status_code == 403
