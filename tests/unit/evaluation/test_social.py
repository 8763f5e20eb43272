"""Social supervisors (Art 22): anonymised statistics, opinions the agency answers."""

from __future__ import annotations

from tests.unit.evaluation.conftest import Evaluation, handled


async def appoint(service: Evaluation, *usernames: str) -> None:
    """Art 22: the government-services department builds the team."""
    for username in usernames:
        r = await service.call(
            "POST",
            "/social-supervisors",
            "govservice",
            json={"username": username, "name": "社会监督员", "affiliation": "市人大代表"},
        )
        assert r.status_code == 201, r.text


async def test_supervisors_read_statistics_without_personal_data(service: Evaluation) -> None:
    await appoint(service, "supervisor")
    await handled(service, "TJ1")
    await handled(service, "TJ2")
    await service.call("POST", "/revisits/TJ1", json={"rating": "satisfied", "resolved": True})
    r = await service.call("GET", "/public/statistics?from=2026-03-01&to=2026-03-31", "supervisor")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["tickets_registered"] == 2
    assert stats["by_district"] == [{"key": "120103", "name": None, "count": 2}]
    [water] = stats["units"]
    assert water["satisfaction"]["numerator"] == 1 and water["satisfaction"]["tickets"] is None
    text = r.text
    for personal in ("友谊路", "刘芳", "139", "TJ1", "停水了"):
        assert personal not in text
    assert (await service.call("GET", "/public/statistics", "unit_water")).status_code == 403
    # and the detailed score lists stay closed to them
    assert (await service.call("GET", "/scores", "supervisor")).status_code == 403


async def test_opinions_are_submitted_listed_and_answered(service: Evaluation) -> None:
    body = {"subject": "回访时效", "body": "建议缩短回访间隔"}
    await appoint(service, "supervisor", "supervisor2")
    assert (await service.call("POST", "/opinions", "agency", json=body)).status_code == 403
    r = await service.call("POST", "/opinions", "supervisor", json=body)
    assert r.status_code == 201
    opinion_id = r.json()["opinion_id"]
    await service.call("POST", "/opinions", "supervisor2", json={**body, "subject": "其他"})
    assert (await service.call("GET", "/opinions?state=open")).json()["count"] == 2
    assert (await service.call("GET", "/opinions", "supervisor")).json()["count"] == 1
    path = f"/opinions/{opinion_id}/answer"
    assert (await service.call("POST", path, "supervisor", json={"answer": "x"})).status_code == 403
    r = await service.call("POST", path, json={"answer": "已采纳，下季度试行"})
    assert r.json()["state"] == "answered" and r.json()["answered_by"] == "agency"
    assert (await service.call("POST", path, json={"answer": "again"})).status_code == 409
    mine = (await service.call("GET", "/opinions", "supervisor")).json()["data"][0]
    assert mine["answer"] == "已采纳，下季度试行"


async def test_only_the_department_builds_the_team_and_only_members_speak(
    service: Evaluation,
) -> None:
    """Art 22: 市政务服务部门组建热线社会监督员队伍 — the agency cannot appoint; a
    supervisor not on the team (or dismissed) reads and submits nothing; the department
    hears and answers opinions."""
    body = {"username": "supervisor", "name": "李敏", "affiliation": "市政协委员"}
    assert (await service.call("POST", "/social-supervisors", json=body)).status_code == 403
    opinion = {"subject": "夜间接通率", "body": "建议夜间增加坐席"}
    outsider = await service.call("POST", "/opinions", "supervisor", json=opinion)
    assert outsider.status_code == 403 and "Art 22" in outsider.json()["rule"]
    r = await service.call("POST", "/social-supervisors", "govservice", json=body)
    assert r.status_code == 201 and r.json()["appointed_by"] == "govservice"
    again = await service.call("POST", "/social-supervisors", "govservice", json=body)
    assert again.status_code == 409
    r = await service.call("POST", "/opinions", "supervisor", json=opinion)
    assert r.status_code == 201, r.text
    answer = {"answer": "已纳入下季度排班调整"}
    path = f"/opinions/{r.json()['opinion_id']}/answer"
    assert (await service.call("POST", path, "govservice", json=answer)).status_code == 200
    r = await service.call("POST", "/social-supervisors/supervisor/dismiss", "govservice")
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await service.call("GET", "/public/statistics", "supervisor")).status_code == 403
    team = (await service.call("GET", "/social-supervisors", "agency")).json()
    assert [(m["username"], m["active"]) for m in team["data"]] == [("supervisor", False)]


async def test_a_district_agency_reads_its_districts_statistics(service: Evaluation) -> None:
    """Art 3: the statistics page of a district work agency counts its district only."""
    await handled(service, "TJ1")  # Hexi (120103)
    period = "from=2026-03-01&to=2026-03-31"
    city = (await service.call("GET", f"/public/statistics?{period}", "agency")).json()
    hexi = (await service.call("GET", f"/public/statistics?{period}", "agency_hexi")).json()
    heping = (await service.call("GET", f"/public/statistics?{period}", "agency_heping")).json()
    assert city["tickets_registered"] == hexi["tickets_registered"] == 1
    assert [u["key"] for u in hexi["units"]] == ["city-water"]
    assert heping["tickets_registered"] == 0
    assert heping["by_district"] == [] and heping["units"] == []
