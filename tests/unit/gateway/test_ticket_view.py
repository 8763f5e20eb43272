"""One ticket view for every role (GET /api/v1/tickets/{id}), through the real gateway and
services embedded: what each role may see, in one vocabulary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.unit.security.conftest import Platform, eventually, running_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path_factory.mktemp("view")) as running:
        water = await running.register()
        await running.dispatched(water)
        running.tickets["unit_water"] = water
        yield running


async def test_the_operator_sees_every_part_in_one_vocabulary(platform: Platform) -> None:
    tid = platform.tickets["unit_water"]
    r = await platform.call("operator", "GET", f"/api/v1/tickets/{tid}")
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["state"] == "dispatched"
    assert view["registration"]["requester_name"] == "刘芳"
    assert view["assignment"]["unit_id"] == "city-water"
    assert view["withheld"] == []


async def test_the_lead_unit_sees_its_parts_and_is_told_what_is_withheld(
    platform: Platform,
) -> None:
    tid = platform.tickets["unit_water"]

    async def with_clocks() -> Any:  # the SLA service starts them from the dispatch event
        r = await platform.call("unit_water", "GET", f"/api/v1/tickets/{tid}")
        return r if r.status_code == 200 and r.json()["clocks"] else None

    r = await eventually(with_clocks, "the ticket's clocks")
    view = r.json()
    assert view["state"] == "dispatched" and view["assignment"]["unit_id"] == "city-water"
    assert view["clocks"]["ticket_id"] == tid
    assert "13920001234" not in r.text
    assert view["registration"] is None or "13920001234" not in str(view["registration"])


async def test_another_unit_and_the_channels_are_refused(platform: Platform) -> None:
    tid = platform.tickets["unit_water"]
    other = await platform.call("unit_heping_housing", "GET", f"/api/v1/tickets/{tid}")
    assert other.status_code == 403
    channel = await platform.call("citizen_web", "GET", f"/api/v1/tickets/{tid}")
    assert channel.status_code == 403 and "/api/v1/intake/tickets/lookup" in channel.text


async def test_a_unit_calling_the_intake_view_is_told_the_right_view(platform: Platform) -> None:
    tid = platform.tickets["unit_water"]
    r = await platform.call("unit_water", "GET", f"/api/v1/intake/tickets/{tid}")
    if r.status_code == 403:
        assert f"/api/v1/tickets/{tid}" in r.json()["detail"]
    else:  # the lead unit may read the requester for contact (Art 13), audited
        assert r.status_code == 200


async def test_the_public_case_page_is_open_without_signing_in(platform: Platform) -> None:
    """Art 25, 30: a ticket still in handling is no case (409 with the reason); the public
    case page is read without signing in, every other route still asks for a token."""
    case = {
        "ticket_id": platform.tickets["unit_water"],
        "kind": "typical",
        "title": "停水抢修及时恢复供水",
        "request": "市民刘芳反映小区停水，联系电话13920001234。",
        "handling": "供水企业接单后两小时内完成抢修。",
        "result": "当日恢复供水。",
        "names": ["刘芳"],
    }
    r = await platform.call("agency", "POST", "/api/v1/knowledge/cases", json=case)
    assert r.status_code == 409, r.text
    assert "not completed" in r.json()["detail"]
    page = await platform.call(None, "GET", "/api/v1/knowledge/cases/public")
    assert page.status_code == 200, page.text
    assert page.json()["count"] == 0
    for closed in ("/api/v1/knowledge/cases", "/api/v1/knowledge/entries"):
        assert (await platform.call(None, "GET", closed)).status_code == 401
    posted = await platform.call(None, "POST", "/api/v1/knowledge/cases/public", json={})
    assert posted.status_code == 401
