"""Monitoring (Art 27): a hotspot is reported once per burst; flagged tickets are listed
with their state; the window and threshold are policy settings."""

from __future__ import annotations

from datetime import timedelta

from shared.events import TicketFlagged
from tests.unit.evaluation.conftest import T0, Evaluation, dispatched, registered


def burst(
    prefix: str,
    n: int,
    *,
    every_minutes: float = 5,
    district: str = "120103",
    matter: str = "WATER-001",
):  # type: ignore[no-untyped-def]
    return [
        registered(
            f"{prefix}{i}",
            T0 + timedelta(minutes=i * every_minutes),
            district=district,
            matter=matter,
        )
        for i in range(n)
    ]


async def test_ten_tickets_in_an_hour_make_one_hotspot(service: Evaluation) -> None:
    tickets = burst("TJ", 14)  # 0..65 minutes: the 10th arrives at minute 45
    await service.feed(*tickets[:9])
    assert service.emitted("monitor.hotspot") == []
    await service.feed(*tickets[9:])
    await service.feed(tickets[3])  # redelivered
    [hotspot] = service.emitted("monitor.hotspot")
    assert hotspot.payload["ticket_count"] == 10
    assert hotspot.payload["ticket_ids"] == [f"TJ{i}" for i in range(10)]
    assert (hotspot.payload["matter_code"], hotspot.payload["district"]) == ("WATER-001", "120103")
    [listed] = (await service.call("GET", "/hotspots?active=true", "operator")).json()["data"]
    assert listed["ticket_count"] == 14 and listed["active"] is True


async def test_other_districts_and_slow_trickles_are_no_hotspot(service: Evaluation) -> None:
    await service.feed(*burst("A", 9), *burst("B", 9, district="120101"))
    await service.feed(*burst("C", 12, every_minutes=7, matter="POWER-001"))  # 10 span 63 min
    assert service.emitted("monitor.hotspot") == []


async def test_a_later_burst_is_a_new_hotspot_and_old_ones_expire(service: Evaluation) -> None:
    await service.feed(*burst("A", 10))
    later = [registered(f"B{i}", T0 + timedelta(hours=5, minutes=i)) for i in range(10)]
    await service.feed(*later)
    assert len(service.emitted("monitor.hotspot")) == 2
    service.clock.set(T0 + timedelta(hours=5, minutes=30))
    active = (await service.call("GET", "/hotspots?active=true")).json()
    assert active["count"] == 1 and active["data"][0]["ticket_ids"][0] == "B0"
    assert (await service.call("GET", "/hotspots")).json()["count"] == 2
    assert (await service.call("GET", "/hotspots", "unit_water")).status_code == 403


async def test_the_threshold_is_a_policy_setting(service: Evaluation) -> None:
    policy = (await service.call("GET", "/policy")).json()["in_force"]["settings"]
    policy["hotspot"] = {"window": "30m", "threshold": 3}
    r = await service.call(
        "POST",
        "/policy/versions",
        "admin",
        json={"effective_from": service.clock.now().isoformat(), "settings": policy},
    )
    assert r.status_code == 201, r.text
    await service.feed(*burst("X", 3, every_minutes=10))
    assert len(service.emitted("monitor.hotspot")) == 1
    bad = {**policy, "hotspot": {"window": "1wd", "threshold": 3}}
    r = await service.call(
        "POST",
        "/policy/versions",
        "admin",
        json={"effective_from": (T0 + timedelta(days=1)).isoformat(), "settings": bad},
    )
    assert r.status_code == 422
    past = {"effective_from": (T0 - timedelta(days=1)).isoformat(), "settings": policy}
    refused = await service.call("POST", "/policy/versions", "admin", json=past)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "effective_from"
    assert "Asia/Shanghai" in refused.json()["detail"]


async def test_flagged_tickets_are_listed_with_their_state(service: Evaluation) -> None:
    flagged = TicketFlagged(
        ticket_id="TJF",
        flagged_at=T0,
        keywords=["轻生"],
        district="120103",
        matter_code="WATER-001",
    ).envelope(producer="intake", occurred_at=T0)
    await service.feed(registered("TJF"), flagged, registered("TJN"))
    await service.feed(dispatched("TJF", T0 + timedelta(minutes=2)))
    r = await service.call("GET", "/flagged")
    [row] = r.json()["data"]
    assert (row["ticket_id"], row["state"], row["keywords"]) == ("TJF", "dispatched", ["轻生"])
    assert (await service.call("GET", "/flagged", "unit_water")).status_code == 403


async def test_late_and_shuffled_tickets_are_counted_as_if_in_order(service: Evaluation) -> None:
    """The tally is a counter of the latest times per matter and district; a ticket that
    arrives after newer ones (another partition) is judged with them: ten tickets within
    the hour are a hotspot, whichever of them is heard last."""
    tickets = burst("S", 10)  # 0..45 minutes
    await service.feed(*tickets[1:9], tickets[9])  # 9 tickets, S0 still missing
    assert service.emitted("monitor.hotspot") == []
    await service.feed(tickets[0])  # the oldest, last: it completes S9's hour
    [hotspot] = service.emitted("monitor.hotspot")
    assert hotspot.payload["ticket_ids"] == [f"S{i}" for i in range(10)]
    await service.feed(registered("S10", T0 + timedelta(minutes=61)))  # joins, no new event
    assert len(service.emitted("monitor.hotspot")) == 1
    [listed] = (await service.call("GET", "/hotspots?active=true", "operator")).json()["data"]
    assert listed["ticket_count"] == 11


async def test_a_late_ticket_opens_the_hotspot_a_newer_ticket_would_have(
    service: Evaluation,
) -> None:
    """Eleven tickets, 0..50 minutes, heard out of order across partitions: S10 before
    S8 and S9. Heard in order, S9 would have opened the hotspot and S10 joined it; the
    late S8 completes S10's window, so the hotspot opens then, and S10 is in it."""
    tickets = burst("S", 11)
    await service.feed(*tickets[:8], tickets[10])  # S0..S7 and S10: 9 in S10's hour
    assert service.emitted("monitor.hotspot") == []
    await service.feed(tickets[8])
    [hotspot] = service.emitted("monitor.hotspot")
    assert hotspot.payload["ticket_ids"] == [*(f"S{i}" for i in range(9)), "S10"]
    await service.feed(tickets[9])
    [listed] = (await service.call("GET", "/hotspots?active=true", "operator")).json()["data"]
    assert listed["ticket_count"] == 11
    assert len(service.emitted("monitor.hotspot")) == 1


async def test_a_district_agency_sees_its_districts_hotspots_only(service: Evaluation) -> None:
    """Art 3: a burst in Hexi (120103) and one in Heping (120101); each district work agency
    sees its own hotspot and flagged tickets, the city agency sees both."""
    await service.feed(*burst("A", 10), *burst("B", 10, district="120101"))
    flagged = TicketFlagged(
        ticket_id="B0", flagged_at=T0, keywords=["轻生"], district="120101", matter_code="WATER-001"
    ).envelope(producer="intake", occurred_at=T0)
    await service.feed(flagged)
    city = (await service.call("GET", "/hotspots", "agency")).json()
    hexi = (await service.call("GET", "/hotspots", "agency_hexi")).json()
    assert city["count"] == 2
    assert [h["district"] for h in hexi["data"]] == ["120103"]
    other = await service.call("GET", "/hotspots?district=120101", "agency_hexi")
    assert other.status_code == 403 and "Art 3" in other.json()["rule"]
    assert (await service.call("GET", "/flagged", "agency_hexi")).json()["count"] == 0
    assert (await service.call("GET", "/flagged", "agency_heping")).json()["count"] == 1
    assert (await service.call("GET", "/flagged", "agency")).json()["count"] == 1
