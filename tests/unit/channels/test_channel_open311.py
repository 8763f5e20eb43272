"""Open311 GeoReport v2 through the gateway, checked against the specification's field
lists and formats (JSON and XML), its errors, api_key and jurisdiction_id."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from services.channels.models import open311_requests
from services.channels.open311 import REQUEST_FIELDS, SERVICE_FIELDS
from shared.events import DeadlineSet, Reply, TicketCompleted, TicketDispatched, UnitPublished
from tests.conftest import at
from tests.unit.channels.conftest import T0, Platform

V2 = "/open311/v2"
W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
FORM = {
    "service_code": "WATER-001",
    "address_string": "天津市河西区友谊路街道某小区3号楼",
    "description": "从早上八点开始停水，家里有老人",
    "first_name": "芳",
    "last_name": "刘",
    "phone": "13920001234",
    "lat": "39.0851",
    "long": "117.2010",
}


async def client_key(platform: Platform) -> str:
    account = await platform.create_account(name="随手拍 App", scope="tickets", channel="web")
    return account["api_key"]  # type: ignore[no-any-return]


async def submit(platform: Platform, **extra: str) -> Any:
    return await platform.http.post(f"{V2}/requests.json", data={**FORM, **extra})


async def test_the_service_list_has_the_specs_fields_in_json_and_xml(platform: Platform) -> None:
    r = await platform.http.get(f"{V2}/services.json", params={"jurisdiction_id": "tianjin.gov.cn"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    services = r.json()
    assert {s["service_code"] for s in services} == {"WATER-001", "OTHER-001"}
    for service in services:
        assert tuple(service) == SERVICE_FIELDS
        assert service["metadata"] is False and service["type"] == "realtime"
    water = next(s for s in services if s["service_code"] == "WATER-001")
    assert water["service_name"] == "停水" and water["group"] == "WATER"
    r = await platform.http.get(f"{V2}/services.xml")
    assert r.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(r.content)
    assert root.tag == "services"
    for service in root:
        assert service.tag == "service"
        assert tuple(child.tag for child in service) == SERVICE_FIELDS
    assert {s.findtext("metadata") for s in root} == {"false"}


async def test_a_service_definition_and_errors_in_the_specs_shape(platform: Platform) -> None:
    r = await platform.http.get(f"{V2}/services/WATER-001.json")
    assert r.json() == {"service_code": "WATER-001", "attributes": []}
    r = await platform.http.get(f"{V2}/services/NOPE-1.xml")
    assert r.status_code == 404
    error = ElementTree.fromstring(r.content)
    assert error.tag == "errors" and error[0].tag == "error"
    assert error[0].findtext("code") == "404" and error[0].findtext("description")
    r = await platform.http.get(f"{V2}/services.json", params={"jurisdiction_id": "beijing"})
    assert r.status_code == 404
    assert list(r.json()[0]) == ["code", "description"]


async def test_a_request_needs_a_valid_api_key(platform: Platform) -> None:
    r = await submit(platform)
    assert r.status_code == 403 and r.json()[0]["code"] == 403
    r = await submit(platform, api_key="hk_unknown")
    assert r.status_code == 403
    assert await platform.emitted("ticket.registered") == []


async def test_a_request_is_filed_on_the_clients_channel_and_followed(platform: Platform) -> None:
    key = await client_key(platform)
    r = await submit(platform, api_key=key, jurisdiction_id="tianjin.gov.cn")
    assert r.status_code == 201, r.text
    [created] = r.json()
    assert tuple(created) == ("service_request_id", "service_notice", "account_id")
    ticket_id = created["service_request_id"]
    [registered] = await platform.emitted("ticket.registered")
    assert registered.ticket_id == ticket_id
    assert registered.payload["channel"] == "web"
    assert registered.payload["matter_code"] == "WATER-001"

    [request] = (await platform.http.get(f"{V2}/requests/{ticket_id}.json")).json()
    assert tuple(request) == REQUEST_FIELDS
    assert request["status"] == "open" and request["service_name"] == "停水"
    assert request["lat"] == 39.0851 and request["long"] == 117.201
    assert W3C.match(request["requested_datetime"])
    assert request["expected_datetime"] is None

    await platform.publish(
        UnitPublished(unit_id="city-water", name="天津水务集团", level="city"),
        TicketDispatched(
            ticket_id=ticket_id,
            unit_id="city-water",
            matter_code="WATER-001",
            district="120103",
            type="help",
            urgency="livelihood",
            dispatched_at=T0,
        ),
        DeadlineSet(
            ticket_id=ticket_id,
            clock="completion",
            unit_id="city-water",
            started_at=T0,
            deadline=at("2026-03-09 18:00"),
            period="5wd",
        ),
    )
    [request] = (await platform.http.get(f"{V2}/requests/{ticket_id}.json")).json()
    assert request["agency_responsible"] == "天津水务集团"
    assert request["expected_datetime"] == "2026-03-09T18:00:00+08:00"

    await platform.publish(
        TicketCompleted(
            ticket_id=ticket_id,
            unit_id="city-water",
            completed_at=T0,
            type="help",
            reply=Reply(
                policy_basis="《天津市供水条例》",
                progress="已抢修",
                result="管道已修复，恢复供水",
                contacted_at=T0,
                process="现场抢修",
                feedback="市民认可",
            ),
        )
    )
    r = await platform.http.get(f"{V2}/requests.xml", params={"status": "closed"})
    root = ElementTree.fromstring(r.content)
    assert root.tag == "service_requests"
    [closed] = list(root)
    assert tuple(child.tag for child in closed) == REQUEST_FIELDS
    assert closed.findtext("service_request_id") == ticket_id
    assert closed.findtext("status_notes") == "管道已修复，恢复供水"
    assert (await platform.http.get(f"{V2}/requests.json", params={"status": "open"})).json() == []

    [row] = await platform.rows(open311_requests)
    r = await platform.http.get(f"{V2}/tokens/{row.token}.json")
    assert r.json() == [{"service_request_id": ticket_id, "token": row.token}]


async def test_a_request_without_a_location_is_refused(platform: Platform) -> None:
    key = await client_key(platform)
    r = await platform.http.post(
        f"{V2}/requests.json",
        data={"api_key": key, "service_code": "WATER-001", "description": "停水"},
    )
    assert r.status_code == 400
    assert "location" in r.json()[0]["description"]
