"""Object scope (issue 9, defects 1–3): a unit clerk, a channel client or a supervisor reads
nothing of another unit's tickets, and an industry authority acts only in its industry."""

from __future__ import annotations

import pytest

from shared.settings import SERVICES
from tests.unit.security.conftest import WATER_OUTAGE, Platform, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROPERTY_DISPUTE = {
    **WATER_OUTAGE,
    "type": "complaint",
    "matter_code": "HOUSE-002",
    "district": "120101",
    "address": "和平区南营门街道某小区",
    "content": "小区电梯长期故障无人维修，物业推诿，电话13800138000",
}


@pytest.mark.parametrize("service", SERVICES)
async def test_internal_ticket_events_are_the_gateways_alone(
    platform: Platform, service: str
) -> None:
    """Defect 1: the service-side timeline part answered any unit for any ticket."""
    water = platform.tickets["unit_water"]
    for user in ("unit_heping_housing", "unit_water", "authority", "operator", "citizen_web"):
        r = await platform.call(user, "GET", f"/api/v1/{service}/internal/tickets/{water}/events")
        assert r.status_code in (403, 404), (user, r.status_code, r.text[:200])
        assert "刘芳" not in r.text and "13920001234" not in r.text


async def test_the_timeline_still_merges_every_service_for_those_who_may_read(
    platform: Platform,
) -> None:
    water = platform.tickets["unit_water"]
    r = await platform.call("operator", "GET", f"/api/v1/tickets/{water}/timeline")
    assert r.status_code == 200, r.text
    producers = {e["producer"] for e in r.json()["events"]}
    assert {"intake", "dispatch"} <= producers
    other = await platform.call("unit_heping_housing", "GET", f"/api/v1/tickets/{water}/timeline")
    assert other.status_code == 403


async def _extension_of_property_ticket(platform: Platform) -> str:
    ticket = await platform.register(PROPERTY_DISPUTE)
    assert (await platform.dispatched(ticket))["unit_id"] == "120101-housing"
    r = await platform.call(
        "unit_heping_housing", "POST", f"/api/v1/dispatch/tickets/{ticket}/accept"
    )
    assert r.status_code == 200, r.text

    async def requested() -> str | None:
        r = await platform.call(
            "unit_heping_housing",
            "POST",
            f"/api/v1/sla/tickets/{ticket}/extensions",
            json={"reason": "需更换主管道", "progress": "已勘察现场", "measures": "协调施工队"},
        )
        return str(r.json()["extension_id"]) if r.status_code == 201 else None

    found: str = await eventually(requested, "an extension request")
    return found


async def test_an_extension_is_read_only_by_its_unit_and_the_reviewers(platform: Platform) -> None:
    """Defect 2: ``GET /sla/extensions/{id}`` had no role check at all."""
    extension = await _extension_of_property_ticket(platform)
    path = f"/api/v1/sla/extensions/{extension}"
    for user in ("citizen_web", "supervisor", "unit_water", "unit_hexi_housing"):
        r = await platform.call(user, "GET", path)
        assert r.status_code == 403, (user, r.text)
        assert "需更换主管道" not in r.text
    for user in ("unit_heping_housing", "agency", "operator", "admin"):
        assert (await platform.call(user, "GET", path)).status_code == 200, user


async def test_the_authority_is_bound_to_its_industry(platform: Platform) -> None:
    """Defect 3: the housing authority decided a water ticket and listed every industry."""
    me = await platform.call("authority", "GET", "/api/v1/auth/me")
    assert me.json()["industry"] == "housing"

    open_matter = {**WATER_OUTAGE, "matter_code": "OTHER-001", "content": "楼下管道漏水无人管"}
    disputed = await platform.register(open_matter)

    async def waiting() -> bool:
        r = await platform.call("agency", "GET", f"/api/v1/dispatch/tickets/{disputed}")
        return r.status_code == 200 and r.json()["state"] == "pending_determination"

    await eventually(waiting, "the determination queue")
    decide = await platform.call(
        "authority",
        "POST",
        f"/api/v1/dispatch/tickets/{disputed}/determination",
        json={"lead_unit_id": "city-water", "reason": "供水属水务行业"},
    )
    assert decide.status_code == 403, decide.text
    assert "Art 8" in decide.json().get("rule", "")

    water = platform.tickets["unit_water"]

    listed = await platform.call("authority", "GET", "/api/v1/dispatch/tickets?limit=200")
    assert listed.status_code == 200
    assert all(t["unit_id"] != "city-water" for t in listed.json()["data"])
    assert water not in listed.text
    one = await platform.call("authority", "GET", f"/api/v1/dispatch/tickets/{water}")
    assert one.status_code == 403
    queue = await platform.call("authority", "GET", "/api/v1/dispatch/determinations")
    assert queue.status_code == 200 and water not in queue.text
