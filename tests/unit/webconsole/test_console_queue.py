"""The agency's manual dispatch queue page as the server renders it: each work order's
dispatch deadline (派单时限, Art 6) in Shanghai time, a dash while the SLA has not set it,
and 逾期 on one already past by the platform's clock. Dispatch and the SLA's clock are
stand-ins behind the real gateway and console."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_gateway_app
from shared.settings import Settings

# the platform's clock (a drill's): the wall clock would have both deadlines long past
PLATFORM_NOW = "2026-06-01T04:00:00+00:00"


def work_order(ticket_id: str, dispatch_deadline: str | None) -> dict[str, object]:
    return {
        "ticket_id": ticket_id,
        "state": "pending_dispatch",
        "matter_code": "M01",
        "district": "heping",
        "type": "complaint",
        "urgency": "general",
        "registered_at": "2026-05-31T04:00:00+00:00",
        "content": "路灯不亮",
        "dispatch_deadline": dispatch_deadline,
    }


QUEUE = [
    work_order("T-PAST", "2026-06-01T03:30:00+00:00"),
    work_order("T-AHEAD", "2026-06-01T05:00:00+00:00"),
    work_order("T-UNSET", None),
]


def stand_in(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/tickets" and request.url.params.get("state") == "pending_dispatch":
        return httpx.Response(200, json={"data": QUEUE, "count": len(QUEUE)})
    if request.url.path == "/internal/clock":
        return httpx.Response(200, json={"now": PLATFORM_NOW})
    return httpx.Response(404, json={"detail": "not here"})


@pytest.fixture
async def agency() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.MockTransport(stand_in)
    app = create_gateway_app(Settings(), transports={"dispatch": transport, "sla": transport})
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://console") as client:
            form = await client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token
            signed_in = await client.post(
                "/login",
                data={"username": "agency", "password": "demo12345", "csrf_token": token[1]},
            )
            assert signed_in.status_code == 303
            yield client


def cells(page: str, ticket_id: str) -> list[str]:
    row = next(r for r in page.split("<tr>") if f">{ticket_id}</a>" in r)
    return re.findall(r"<td>(.*?)</td>", row)


async def test_the_dispatch_queue_shows_each_dispatch_deadline_and_marks_one_past(
    agency: httpx.AsyncClient,
) -> None:
    answer = await agency.get("/agency/dispatch")
    assert answer.status_code == 200, answer.text[:500]
    page = answer.text

    headers = re.findall(r"<th>(.*?)</th>", page)
    column = headers.index("派单时限")
    assert headers[column - 1] == "登记时间"
    assert cells(page, "T-PAST")[column] == '2026-06-01 11:30 <span class="badge red">逾期</span>'
    assert cells(page, "T-AHEAD")[column] == "2026-06-01 13:00"
    assert cells(page, "T-UNSET")[column] == "—"
