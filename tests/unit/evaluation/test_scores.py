"""Unit scores (Art 23) against a hand-computed fixture: a returned ticket (two dispatches),
a re-handled ticket (round 2), an accepted exemption (Art 24), a praise ticket, late clocks.

Period 2026-03-01..31, weights 0.2 / 0.3 / 0.3 / 0.2 (the default policy).

city-water (W)                        acceptance  completion  satisfaction       resolution
  A  on time, satisfied, resolved     on time     on time     satisfied          resolved
  B  accepted late, basically sat.    late        on time     basically          unresolved
  C  completed late, dissatisfied     on time     late        EXEMPTED (excl.)   unresolved
  D  praise                           on time     on time     — (not rated)      —
  E  returned by H, then W, sent back on time ×2  on time ×2  satisfied (rd 2)   resolved
  → 5/6, 5/6, 3/3 = 1.0, 2/4 = 0.5; composite 100·(.2·5/6 + .3·5/6 + .3·1 + .2·.5) = 81.67

120103-housing (H)
  E  returned before accepting        not counted
  F  completed late, dissatisfied,    on time     late        pending decision   —
     no decision yet
  G  never accepted, overdue          late        —
  → 1/2, 0/1, none, none; composite renormalised 100·(.2·.5 + .3·0)/.5 = 20.0
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from tests.unit.evaluation.conftest import (
    T0,
    Evaluation,
    accepted,
    completed,
    dispatched,
    overdue,
    registered,
    returned,
)

W, H = "city-water", "120103-housing"
PERIOD = "from=2026-03-01&to=2026-03-31"


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


async def rate(service: Evaluation, tid: str, rating: str, resolved: bool) -> None:
    r = await service.call(
        "POST", f"/revisits/{tid}", json={"rating": rating, "resolved": resolved}
    )
    assert r.status_code == 200, r.text


async def build_fixture(service: Evaluation) -> None:
    s = T0
    await service.feed(
        # A
        registered("A", s), dispatched("A", s + m(5)), accepted("A", s + m(10)),
        completed("A", s + m(120)),
        # B: acceptance overdue, accepted late
        registered("B", s), dispatched("B", s + m(5)), overdue("B", "acceptance", s + m(35)),
        accepted("B", s + m(40)), completed("B", s + m(200)),
        # C: completion overdue
        registered("C", s), dispatched("C", s + m(5)), accepted("C", s + m(10)),
        overdue("C", "completion", s + m(10) + timedelta(hours=24)),
        completed("C", s + timedelta(hours=30)),
        # D: praise
        registered("D", s, type_="praise"), dispatched("D", s + m(5), type_="praise"),
        accepted("D", s + m(10)), completed("D", s + m(60), type_="praise"),
        # E: dispatched to H, returned, re-dispatched to W
        registered("E", s), dispatched("E", s + m(5), H), returned("E", s + m(20), H),
        dispatched("E", s + m(30), W, dispatch_no=2), accepted("E", s + m(40)),
        completed("E", s + m(300)),
        # F: H completes late
        registered("F", s), dispatched("F", s + m(5), H), accepted("F", s + m(10), H),
        overdue("F", "completion", s + timedelta(hours=20), H),
        completed("F", s + timedelta(hours=21), H),
        # G: H never accepts
        registered("G", s), dispatched("G", s + m(5), H), overdue("G", "acceptance", s + m(35), H),
    )  # fmt: skip
    service.clock.advance(timedelta(days=2))
    await rate(service, "A", "satisfied", True)
    await rate(service, "B", "basically_satisfied", False)
    await rate(service, "C", "dissatisfied", False)
    r = await service.call(
        "POST", "/revisits/C/decision", json={"decision": "close", "reason": "已按政策答复"}
    )
    assert r.status_code == 200, r.text
    await rate(service, "E", "dissatisfied", False)
    await service.call(
        "POST", "/revisits/E/decision", json={"decision": "send_back", "reason": "仍未解决"}
    )
    await service.feed(
        dispatched("E", T0 + timedelta(days=2, hours=1), W, round_=2),
        accepted("E", T0 + timedelta(days=2, hours=1, minutes=5), W, round_=2),
        completed("E", T0 + timedelta(days=2, hours=5), W, round_=2),
    )
    await rate(service, "E", "satisfied", True)
    await rate(service, "F", "dissatisfied", True)  # no decision yet: not final
    filed = await service.call(
        "POST",
        "/exemptions",
        "unit_water",
        data={"ticket_id": "C", "explanation": "已按规定处理，诉求超出政策范围"},
        files=[("files", ("回执.pdf", b"%PDF-1.4 receipt", "application/pdf"))],
    )
    assert filed.status_code == 201, filed.text
    r = await service.call(
        "POST",
        f"/exemptions/{filed.json()['exemption_id']}/decision",
        json={"decision": "accepted", "reason": "确已尽责"},
    )
    assert r.status_code == 200, r.text


def figures(row: dict) -> tuple:  # type: ignore[type-arg]
    return tuple(
        (row[f]["numerator"], row[f]["denominator"])
        for f in ("on_time_acceptance", "on_time_completion", "satisfaction", "resolution")
    )


async def test_scores_match_the_hand_computed_fixture(service: Evaluation) -> None:
    await build_fixture(service)
    r = await service.call("GET", f"/scores?{PERIOD}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["weights"] == {
        "on_time_acceptance": 0.2,
        "on_time_completion": 0.3,
        "satisfaction": 0.3,
        "resolution": 0.2,
    }
    water, housing = body["data"]
    assert (water["rank"], water["unit_id"], water["unit_name"]) == (1, W, "天津水务集团有限公司")
    assert figures(water) == ((5, 6), (5, 6), (3, 3), (2, 4))
    assert water["satisfaction"]["rate"] == 1.0
    assert water["on_time_acceptance"]["rate"] == pytest.approx(0.8333)
    assert water["exempted"] == 1
    assert water["composite"] == 81.67
    assert (housing["rank"], housing["unit_id"]) == (2, H)
    assert figures(housing) == ((1, 2), (0, 1), (0, 0), (0, 0))
    assert housing["satisfaction"]["rate"] is None
    assert housing["composite"] == 20.0


async def test_every_figure_is_traceable_to_its_tickets(service: Evaluation) -> None:
    await build_fixture(service)
    r = await service.call("GET", f"/scores/{W}?{PERIOD}&explain=true")
    [water] = r.json()["data"]
    acceptance = {
        (t["ticket_id"], t["round"], t["outcome"]) for t in water["on_time_acceptance"]["tickets"]
    }
    assert acceptance == {
        ("A", 1, "on_time"),
        ("B", 1, "late"),
        ("C", 1, "on_time"),
        ("D", 1, "on_time"),
        ("E", 1, "on_time"),
        ("E", 2, "on_time"),
    }
    satisfaction = {t["ticket_id"]: t for t in water["satisfaction"]["tickets"]}
    assert satisfaction["C"]["outcome"] == "exempted" and satisfaction["C"]["counted"] is False
    assert satisfaction["E"]["round"] == 2  # the final rating counts, not the first
    assert "D" not in satisfaction  # praise is not rated
    housing = (await service.call("GET", f"/scores/{H}?{PERIOD}&explain=true")).json()["data"][0]
    outcomes = {t["ticket_id"]: t["outcome"] for t in housing["on_time_acceptance"]["tickets"]}
    assert outcomes == {"E": "returned", "F": "on_time", "G": "late"}
    # and the rating itself says it no longer counts
    revisit = (await service.call("GET", "/revisits/C")).json()
    assert revisit["exemption"]["state"] == "accepted"
    assert revisit["counted_in_satisfaction"] is False


async def test_the_three_rates_by_district_and_matter(service: Evaluation) -> None:
    await build_fixture(service)
    r = await service.call("GET", f"/rates?by=district&{PERIOD}")
    [district] = r.json()["data"]
    assert district["key"] == "120103"
    assert (district["response"]["numerator"], district["response"]["denominator"]) == (6, 8)
    assert (district["satisfaction"]["numerator"], district["satisfaction"]["denominator"]) == (
        3,
        3,
    )
    assert (district["resolution"]["numerator"], district["resolution"]["denominator"]) == (2, 4)
    r = await service.call("GET", f"/rates?by=matter&{PERIOD}")
    assert [row["key"] for row in r.json()["data"]] == ["WATER-001"]
    r = await service.call("GET", f"/rates?by=unit&{PERIOD}")
    assert [row["key"] for row in r.json()["data"]] == [H, W]


async def test_a_period_without_the_tickets_is_empty(service: Evaluation) -> None:
    await build_fixture(service)
    r = await service.call("GET", "/scores?from=2026-02-01&to=2026-02-28")
    assert r.json()["count"] == 0


async def test_a_day_at_the_calendars_ends_is_refused_naming_its_field(
    service: Evaluation,
) -> None:
    # 0001-01-01's Shanghai midnight is not a time in UTC: the reports answered 500
    await build_fixture(service)
    for path in ("/scores", f"/scores/{W}", "/rates?by=unit&"):
        glue = "" if path.endswith("&") else "?"
        for query, field in (
            ("from=0001-01-01&to=2026-03-31", "from"),
            ("from=2026-03-01&to=9999-12-31", "to"),
        ):
            r = await service.call("GET", f"{path}{glue}{query}", "unit_water")
            assert r.status_code == 422, (path, query, r.text)
            assert r.json()["errors"] == [
                {"field": field, "reason": "must be a day from 1900-01-01 to 9998-12-31"}
            ]
    r = await service.call("GET", "/scores?from=1900-01-01&to=9998-12-31")
    assert r.status_code == 200, r.text
    assert [row["unit_id"] for row in r.json()["data"]] == [W, H]


async def test_units_see_only_their_own_scores(service: Evaluation) -> None:
    await build_fixture(service)
    r = await service.call("GET", f"/scores?{PERIOD}", "unit_water")
    assert [(row["unit_id"], row["rank"]) for row in r.json()["data"]] == [(W, 1)]
    assert (await service.call("GET", f"/scores/{H}?{PERIOD}", "unit_water")).status_code == 403
    assert (
        await service.call("GET", f"/rates?by=district&{PERIOD}", "unit_water")
    ).status_code == 403
    r = await service.call("GET", f"/rates?by=unit&{PERIOD}", "unit_water")
    assert [row["key"] for row in r.json()["data"]] == [W]


async def test_csv_export_is_for_agency_and_admin_only(service: Evaluation) -> None:
    await build_fixture(service)
    for who in ("unit_water", "operator", "supervisor"):
        assert (await service.call("GET", f"/scores.csv?{PERIOD}", who)).status_code == 403
    r = await service.call("GET", f"/scores.csv?{PERIOD}", "admin")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["rank"], x["unit_id"], x["composite"]) for x in rows] == [
        ("1", W, "81.67"),
        ("2", H, "20.0"),
    ]
    assert rows[0]["exempted"] == "1" and rows[0]["unit_name"] == "天津水务集团有限公司"
    assert all(None not in row for row in rows)  # every value under a header


async def test_changed_weights_take_effect_from_their_date(service: Evaluation) -> None:
    await build_fixture(service)
    policy = (await service.call("GET", "/policy", "operator")).json()["in_force"]["settings"]
    policy["score_weights"] = {
        "on_time_acceptance": 0,
        "on_time_completion": 0,
        "satisfaction": 1,
        "resolution": 0,
    }
    when = (service.clock.now() + timedelta(hours=1)).isoformat()
    body = {"effective_from": when, "settings": policy}
    assert (await service.call("POST", "/policy/versions", "agency", json=body)).status_code == 403
    r = await service.call("POST", "/policy/versions", "admin", json=body)
    assert r.status_code == 201, r.text
    # weights in force at the period's end; the period here ends after the new version
    water = (await service.call("GET", f"/scores/{W}?{PERIOD}")).json()["data"][0]
    assert water["composite"] == 100.0


async def test_a_district_agency_sees_its_districts_statistics_only(service: Evaluation) -> None:
    """Art 3: every fixture ticket is in Hexi (120103): the Hexi work agency sees the same
    scores as the city agency, the Heping one none of them."""
    await build_fixture(service)
    city = (await service.call("GET", f"/scores?{PERIOD}")).json()
    hexi = (await service.call("GET", f"/scores?{PERIOD}", "agency_hexi")).json()
    heping = (await service.call("GET", f"/scores?{PERIOD}", "agency_heping")).json()
    assert city["count"] > 0 and hexi["data"] == city["data"]
    assert heping["count"] == 0
    rates = (await service.call("GET", f"/rates?by=district&{PERIOD}", "agency_heping")).json()
    assert rates["data"] == []


async def test_the_department_signs_off_a_closed_periods_evaluation(service: Evaluation) -> None:
    """Art 23: 市政务服务部门组织热线工作机构对承办单位进行综合评价 — the department signs
    off a period once it has ended; the ranking is frozen as signed."""
    await build_fixture(service)
    march = {"period_from": "2026-03-01", "period_to": "2026-03-31", "note": "同意"}
    early = await service.call("POST", "/scores/signoffs", "govservice", json=march)
    assert early.status_code == 422 and "Art 23" in early.json()["rule"]
    service.clock.advance(timedelta(days=31))  # into April
    assert (await service.call("POST", "/scores/signoffs", json=march)).status_code == 403
    r = await service.call("POST", "/scores/signoffs", "govservice", json=march)
    assert r.status_code == 201, r.text
    live = (await service.call("GET", f"/scores?{PERIOD}")).json()
    assert r.json()["ranking"] == live["data"] and r.json()["signed_by"] == "govservice"
    again = await service.call("POST", "/scores/signoffs", "govservice", json=march)
    assert again.status_code == 409
    listed = (await service.call("GET", "/scores/signoffs", "agency")).json()
    assert listed["count"] == 1 and listed["data"][0]["period_to"] == "2026-03-31"
