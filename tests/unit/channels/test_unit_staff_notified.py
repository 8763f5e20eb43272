"""Art 4 (专人): the staff a unit names are who its notifications reach. Through the real
gateway and every service embedded: the unit names its staff in dispatch, the channels
service learns their work phones from catalog.unit_staff_published, and the next work
order of the unit is sent to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.unit.security.conftest import Platform, eventually, running_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

ZHANG, WANG = "13820002222", "13820003333"
STAFF: list[dict[str, Any]] = [
    {
        "username": "water_zhang",
        "name": "张伟",
        "duties": ["accept", "handle", "reply"],
        "phone": ZHANG,
    },
    {"username": "water_li", "name": "李娜", "duties": ["coordinate"]},  # no phone
    {
        "username": "water_wang",
        "name": "王强",
        "duties": ["accept", "handle"],
        "deputy": True,
        "phone": WANG,
    },
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path_factory.mktemp("staff")) as running:
        yield running


async def work_order_recipients(platform: Platform, ticket_id: str) -> set[str]:
    async def probe() -> list[Any] | None:
        r = await platform.call(
            "admin", "GET", "/api/v1/channels/notifications", params={"ticket_id": ticket_id}
        )
        assert r.status_code == 200, r.text
        rows = [n for n in r.json()["data"] if n["purpose"] == "work_order"]
        return rows or None

    rows = await eventually(probe, f"the work-order notices of {ticket_id}")
    return {n["recipient"] for n in rows if n["medium"] == "sms"}


async def test_the_named_staff_hear_of_the_units_new_work_orders(platform: Platform) -> None:
    bad = {"staff": [{**STAFF[0], "phone": "12345"}]}
    refused = await platform.call(
        "unit_water", "PUT", "/api/v1/dispatch/units/city-water/staff", json=bad
    )
    assert refused.status_code == 422 and "phone" in refused.text
    await platform.call(
        "admin",
        "PUT",
        "/api/v1/channels/notifications/units/city-water",
        json={"phones": ["13820001111"]},
    )
    before = await platform.register()
    await platform.dispatched(before)
    assert await work_order_recipients(platform, before) == {"13820001111"}

    r = await platform.call(
        "unit_water", "PUT", "/api/v1/dispatch/units/city-water/staff", json={"staff": STAFF}
    )
    assert r.status_code == 200, r.text
    assert {m["username"]: m["phone"] for m in r.json()["staff"]}["water_zhang"] == ZHANG

    async def staff_known() -> set[str] | None:
        tid = await platform.register()
        await platform.dispatched(tid)
        found = await work_order_recipients(platform, tid)
        return found if ZHANG in found else None

    assert await eventually(staff_known, "the staff's phones in channels") == {
        "13820001111",
        ZHANG,
        WANG,
    }
