"""Warnings, overdue and escalation exactly once; return and re-handling clocks; the
calendar entered by an admin; policy versions — the SLA service embedded, the clock moved."""

from __future__ import annotations

from datetime import timedelta

from shared.auth import Role
from shared.events import ReturnApproved, ReturnRejected
from tests.conftest import at
from tests.unit.sla.conftest import (
    T0,
    Harness,
    accepted,
    dispatched,
    registered,
    settle,
    until,
)


def kinds(harness: Harness, event_type: str, tid: str) -> list[tuple[str, int]]:
    return [
        (e.payload["clock"], e.payload.get("level", 0)) for e in harness.emitted(event_type, tid)
    ]


async def test_warning_overdue_and_two_escalation_levels_each_happen_once(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1", minutes=0)])
        await settle(ctx)
        # life_safety acceptance: 15 min, warning at 75 % = 11 min 15 s after dispatch
        harness.clock.set(T0 + timedelta(minutes=11, seconds=14))
        await settle(ctx)
        assert harness.emitted("sla.warning", "TJ1") == []
        harness.clock.set(T0 + timedelta(minutes=11, seconds=15))
        await until(lambda: len(harness.emitted("sla.warning", "TJ1")) == 1, "warning")
        harness.clock.set(T0 + timedelta(minutes=15))
        await until(lambda: len(harness.overdue("TJ1")) == 1, "overdue")
        await settle(ctx)
        assert kinds(harness, "sla.escalated", "TJ1") == [("acceptance", 1)]
        # level 2: overdue plus one more period (15 min)
        harness.clock.set(T0 + timedelta(minutes=29, seconds=59))
        await settle(ctx)
        assert len(harness.emitted("sla.escalated", "TJ1")) == 1
        harness.clock.set(T0 + timedelta(minutes=30))
        await until(lambda: len(harness.emitted("sla.escalated", "TJ1")) == 2, "level 2")
        harness.clock.advance(timedelta(days=3))
        await settle(ctx)
        assert kinds(harness, "sla.escalated", "TJ1") == [("acceptance", 1), ("acceptance", 2)]
        [level2] = [e for e in harness.emitted("sla.escalated", "TJ1") if e.payload["level"] == 2]
        assert level2.payload["supervision_kind"] == "written"
        assert len(harness.emitted("sla.warning", "TJ1")) == 1
        assert len(harness.overdue("TJ1")) == 1


async def test_a_clock_met_in_time_warns_but_never_goes_overdue(harness: Harness) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ2"), dispatched("TJ2", minutes=0)])
        harness.clock.set(T0 + timedelta(minutes=12))
        await until(lambda: len(harness.emitted("sla.warning", "TJ2")) == 1, "warning")
        await harness.bus.publish([accepted("TJ2", T0 + timedelta(minutes=13))])
        harness.clock.set(T0 + timedelta(minutes=40))
        await settle(ctx)
        assert kinds(harness, "sla.overdue", "TJ2") == []
        clocks = (await harness.call("GET", "/tickets/TJ2/clocks")).json()["clocks"]
        assert [(c["kind"], c["state"]) for c in clocks] == [
            ("dispatch", "met"),
            ("acceptance", "met"),
            ("completion", "running"),
        ]


async def test_an_approved_return_restarts_the_clocks_from_the_new_dispatch(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ3"), dispatched("TJ3", minutes=1)])
        decided = T0 + timedelta(minutes=5)
        await harness.bus.publish(
            [
                ReturnApproved(
                    ticket_id="TJ3", unit_id="city-gas", decided_by="agency", decided_at=decided
                ).envelope(producer="dispatch", occurred_at=decided)
            ]
        )
        # the old acceptance deadline (T0+16m) passes: it was cancelled, so no overdue
        harness.clock.set(T0 + timedelta(minutes=20))
        await settle(ctx)
        assert harness.overdue("TJ3") == []
        await harness.bus.publish(
            [dispatched("TJ3", minutes=21, dispatch_no=2, unit_id="120101-urban")]
        )
        await settle(ctx)
        clocks = (await harness.call("GET", "/tickets/TJ3/clocks")).json()["clocks"]
        acceptance = [c for c in clocks if c["kind"] == "acceptance"]
        assert [(c["dispatch_no"], c["state"]) for c in acceptance] == [
            (1, "cancelled"),
            (2, "running"),
        ]
        assert acceptance[1]["started_at"].startswith("2026-03-02T01:21")
        assert acceptance[1]["unit_id"] == "120101-urban"
        harness.clock.set(T0 + timedelta(minutes=36))
        await until(lambda: len(harness.overdue("TJ3")) == 1, "the new clock goes overdue")
        assert harness.overdue("TJ3")[0].payload["dispatch_no"] == 2
        started = [
            e.payload["dispatch_no"]
            for e in harness.emitted("sla.deadline_set", "TJ3")
            if e.payload["clock"] == "acceptance"
        ]
        assert started == [1, 2]


async def test_a_rejected_return_changes_no_clock(harness: Harness) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ4"), dispatched("TJ4", minutes=1)])
        decided = T0 + timedelta(minutes=5)
        await harness.bus.publish(
            [
                ReturnRejected(
                    ticket_id="TJ4",
                    unit_id="city-gas",
                    decided_by="agency",
                    decided_at=decided,
                    reason="职责清单明确由燃气公司负责",
                ).envelope(producer="dispatch", occurred_at=decided)
            ]
        )
        harness.clock.set(T0 + timedelta(minutes=16))
        await until(lambda: len(harness.overdue("TJ4")) == 1, "original deadline stands")
        await settle(ctx)
        clocks = (await harness.call("GET", "/tickets/TJ4/clocks")).json()["clocks"]
        assert [c["state"] for c in clocks if c["kind"] == "acceptance"] == ["overdue"]


async def test_a_rehandling_round_gets_fresh_clocks_from_the_redispatch(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        start = at("2026-03-02 09:00")
        await harness.bus.publish(
            [
                registered("TJ5", "general", "complaint"),
                dispatched("TJ5", "general", 10, type_="complaint"),
                accepted("TJ5", start + timedelta(hours=1)),
            ]
        )
        redispatched = at("2026-03-16 14:00")
        await harness.bus.publish(
            [
                dispatched("TJ5", "general", 0, type_="complaint", round_=2, start=redispatched),
                accepted("TJ5", at("2026-03-17 10:00"), round_=2),
            ]
        )
        await settle(ctx)
        clocks = (await harness.call("GET", "/tickets/TJ5/clocks")).json()["clocks"]
        round2 = {c["kind"]: c for c in clocks if c["round"] == 2}
        assert round2["acceptance"]["deadline"].startswith("2026-03-17T06:00")  # +1 wd
        assert round2["completion"]["deadline"].startswith("2026-03-26T02:00")  # +7 wd


async def test_a_deadline_into_2027_is_provisional_until_the_admin_enters_2027(
    harness: Harness,
) -> None:
    harness.clock.set(at("2026-12-28 10:00"))
    async with harness.running() as ctx:
        when = at("2026-12-28 10:00")
        await harness.bus.publish(
            [
                registered("TJ6", "general", "complaint", when=when),
                dispatched("TJ6", "general", 0, type_="complaint", start=when),
                accepted("TJ6", when),
            ]
        )
        await settle(ctx)
        ready = (await harness.call("GET", "/calendar", role=Role.ADMIN)).json()
        assert ready["missing_years"] == [2027]
        clocks = (await harness.call("GET", "/tickets/TJ6/clocks")).json()["clocks"]
        completion = next(c for c in clocks if c["kind"] == "completion")
        assert completion["provisional"] is True
        assert completion["deadline"].startswith("2027-01-07T02:00")  # skips 1 Jan
        # the State Council publishes 2027; the admin enters it: New Year's Day off, and
        # (an example) Mon 4 Jan off as well. Every other weekday of an entered year works.
        r = await harness.call(
            "PUT",
            "/calendar/2027",
            role=Role.ADMIN,
            json={
                "days": [
                    {"date": "2027-01-01", "working": False, "note": "元旦"},
                    {"date": "2027-01-04", "working": False, "note": "元旦调休"},
                ],
                "complete": True,
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["recomputed_clocks"] == 1
        await settle(ctx)
        clocks = (await harness.call("GET", "/tickets/TJ6/clocks")).json()["clocks"]
        completion = next(c for c in clocks if c["kind"] == "completion")
        assert completion["provisional"] is False
        assert completion["deadline"].startswith("2027-01-08T02:00")
        reset = [
            e
            for e in harness.emitted("sla.deadline_set", "TJ6")
            if e.payload["clock"] == "completion"
        ]
        assert [e.payload["deadline"][:16] for e in reset] == [
            "2027-01-07T02:00",
            "2027-01-08T02:00",
        ]
        assert (await harness.call("GET", "/calendar", role=Role.ADMIN)).json()[
            "missing_years"
        ] == []


async def test_only_the_admin_changes_the_calendar_and_the_policy(harness: Harness) -> None:
    async with harness.running():
        for method, path, body in (
            ("PUT", "/calendar/2027", {"days": [], "complete": True}),
            (
                "POST",
                "/policy/versions",
                {"effective_from": "2026-06-01T00:00:00+08:00", "settings": {}},
            ),
        ):
            r = await harness.call(method, path, role=Role.AGENCY, json=body)
            assert r.status_code == 403, r.text


async def test_a_policy_change_applies_to_clocks_started_after_its_date(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        policy = (await harness.call("GET", "/policy")).json()["in_force"]["settings"]
        stricter = {
            **policy,
            "periods": {
                **policy["periods"],
                "acceptance": {**policy["periods"]["acceptance"], "life_safety": "10m"},
            },
        }
        past = await harness.call(
            "POST",
            "/policy/versions",
            role=Role.ADMIN,
            json={"effective_from": "2026-03-01T00:00:00+08:00", "settings": stricter},
        )
        assert past.status_code == 422
        assert past.json()["errors"][0]["field"] == "effective_from"
        bad = await harness.call(
            "POST",
            "/policy/versions",
            role=Role.ADMIN,
            json={
                "effective_from": "2026-03-03T00:00:00+08:00",
                "settings": {**stricter, "warning_fraction": 1.5},
            },
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "settings.warning_fraction"
        ok = await harness.call(
            "POST",
            "/policy/versions",
            role=Role.ADMIN,
            json={"effective_from": "2026-03-03T00:00:00+08:00", "settings": stricter},
        )
        assert ok.status_code == 201, ok.text
        assert len(ok.json()["versions"]) == 2
        next_day = at("2026-03-03 09:00")
        await harness.bus.publish(
            [
                registered("OLD"),
                dispatched("OLD", minutes=0),
                registered("NEW", when=next_day),
                dispatched("NEW", minutes=0, start=next_day),
            ]
        )
        await settle(ctx)
        for tid, period in (("OLD", "15m"), ("NEW", "10m")):
            clocks = (await harness.call("GET", f"/tickets/{tid}/clocks")).json()["clocks"]
            assert next(c for c in clocks if c["kind"] == "acceptance")["period"] == period


async def test_the_board_lists_overdue_and_at_risk_clocks_and_scopes_units(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish(
            [
                registered("LATE"),
                dispatched("LATE", minutes=0),
                registered("RISK"),
                dispatched("RISK", minutes=5, unit_id="city-water"),
                registered("CALM", "general", "complaint"),
                dispatched("CALM", "general", 5, type_="complaint"),
            ]
        )
        harness.clock.set(T0 + timedelta(minutes=16, seconds=30))
        await settle(ctx)
        board = (await harness.call("GET", "/board")).json()
        assert [(e["ticket_id"], e["state"]) for e in board["data"]] == [
            ("LATE", "overdue"),
            ("RISK", "at_risk"),
        ]
        only_late = (await harness.call("GET", "/board?status=overdue")).json()
        assert [e["ticket_id"] for e in only_late["data"]] == ["LATE"]
        at_risk = (await harness.call("GET", "/board?status=at_risk")).json()
        assert [e["ticket_id"] for e in at_risk["data"]] == ["RISK"]
        water = (await harness.call("GET", "/board", role=Role.UNIT, unit_id="city-water")).json()
        assert [e["ticket_id"] for e in water["data"]] == ["RISK"]
        # a unit cannot widen its view by naming another unit
        sneaky = await harness.call(
            "GET", "/board?unit_id=city-gas", role=Role.UNIT, unit_id="city-water"
        )
        assert [e["ticket_id"] for e in sneaky.json()["data"]] == ["RISK"]
        forbidden = await harness.call(
            "GET", "/tickets/LATE/clocks", role=Role.UNIT, unit_id="city-water"
        )
        assert forbidden.status_code == 403


EXAMPLE_2027 = (
    # An example in the published form, for a year the calendar package does not know yet.
    "国务院办公厅关于2027年部分节假日安排的通知\n"
    "一、元旦：1月1日（周五）至3日（周日）放假，共3天。\n"
    "二、春节：2月5日（农历除夕、周五）至12日（周五）放假调休，共8天。"
    "2月6日（周六）放假，2月20日（周六）上班。\n"
)


async def test_the_admin_pastes_the_notice_sees_the_grid_then_enters_the_year(
    harness: Harness,
) -> None:
    """The yearly calendar from the State Council's notice: read, shown, then entered; the
    provisional deadlines into that year are recomputed."""
    harness.clock.set(at("2026-12-28 10:00"))
    async with harness.running() as ctx:
        when = at("2026-12-28 10:00")
        await harness.bus.publish(
            [
                registered("TJ7", "general", "complaint", when=when),
                dispatched("TJ7", "general", 0, type_="complaint", start=when),
                accepted("TJ7", when),
            ]
        )
        await settle(ctx)
        body = {"text": EXAMPLE_2027}
        agency = await harness.call("POST", "/calendar/2027/notice", json=body)
        assert agency.status_code == 403
        wrong_year = await harness.call("POST", "/calendar/2028/notice", role=Role.ADMIN, json=body)
        assert wrong_year.status_code == 422
        preview = await harness.call("POST", "/calendar/2027/notice", role=Role.ADMIN, json=body)
        assert preview.status_code == 200, preview.text
        grid = preview.json()
        assert grid["holidays"] == ["元旦", "春节"] and grid["entered"] is None
        assert grid["adjusted_working_days"] == ["2027-02-20"]
        february = {d["date"]: d for d in grid["months"]["2"]}
        assert february["2027-02-08"] == {
            "date": "2027-02-08",
            "working": False,
            "holiday": "春节",
            "changed": True,
        }
        assert february["2027-02-20"]["working"] is True
        # nothing is entered by a preview
        assert (await harness.call("GET", "/calendar", role=Role.ADMIN)).json()[
            "missing_years"
        ] == [2027]
        entered = await harness.call(
            "POST", "/calendar/2027/notice", role=Role.ADMIN, json={**body, "confirm": True}
        )
        assert entered.status_code == 200, entered.text
        assert entered.json()["entered"]["recomputed_clocks"] == 1
        await settle(ctx)
        clocks = (await harness.call("GET", "/tickets/TJ7/clocks")).json()["clocks"]
        completion = next(c for c in clocks if c["kind"] == "completion")
        # 7 working days from Mon 28 Dec: 29, 30, 31 Dec, then 4-7 Jan (1-3 Jan off)
        assert completion["provisional"] is False
        assert completion["deadline"].startswith("2027-01-07T02:00")
        year = (await harness.call("GET", "/calendar/2027", role=Role.ADMIN)).json()
        assert year["entered"] is True and year["provisional"] is False
