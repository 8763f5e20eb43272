"""Channels on the distributed system (real Kafka and PostgreSQL, every service a process):
duplicate deliveries from WeChat and the phone system end as exactly one ticket event, and a
webhook receiver that fails three times gets the fourth try, signed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from wechatpy.utils import WeChatSigner

from services.channels.domain import signature_header
from shared.events import TOPIC_TICKETS
from tests.integration.conftest import System, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOKEN = "hotline12345"
FOLLOWER = "oX7k2s9dLq3mN0pR4tV6wY8zA1bC"
CALLER = "13920005678"


async def create_account(system: System, **body: Any) -> dict[str, Any]:
    async with system.client("admin") as admin:
        r = await admin.post("/api/v1/channels/accounts", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def tickets_of(system: System, event_type: str, **match: Any) -> list[Any]:
    events = await system.events(TOPIC_TICKETS)
    return [
        e
        for e in events
        if e.type == event_type and all(e.payload.get(k) == v for k, v in match.items())
    ]


async def test_a_wechat_message_delivered_twice_is_one_ticket(system: System) -> None:
    account = await create_account(
        system,
        name="天津12345 公众号",
        scope="wechat",
        default_district="120104",
        wechat={"app_id": "wx1234567890abcdef", "token": TOKEN},
    )
    signer = WeChatSigner()
    signer.add_data(TOKEN, "1772413200", "83721")
    query = {"signature": signer.signature, "timestamp": "1772413200", "nonce": "83721"}
    xml = (
        f"<xml><ToUserName><![CDATA[gh_3f1a2b4c5d6e]]></ToUserName>"
        f"<FromUserName><![CDATA[{FOLLOWER}]]></FromUserName><CreateTime>1772413200</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[南开区某路段井盖缺失，很危险]]>"
        f"</Content><MsgId>7391024681357</MsgId></xml>"
    ).encode()
    async with system.client() as wechat:
        answers = await asyncio.gather(
            *(wechat.post(account["wechat_server_path"], params=query, content=xml) for _ in "12")
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        again = await wechat.post(account["wechat_server_path"], params=query, content=xml)
        assert again.status_code == 200

    async def registered() -> list[Any]:
        return await tickets_of(system, "ticket.registered", district="120104")

    [ticket] = await eventually(registered, "the WeChat ticket")
    assert ticket.payload["channel"] == "wechat_official"
    await asyncio.sleep(1.0)  # nothing further trickles in
    assert len(await registered()) == 1


async def test_an_ivr_rating_reported_twice_is_one_call_rating(system: System) -> None:
    account = await create_account(system, name="呼叫中心 CTI", scope="cti")
    key, secret = {"x-api-key": account["api_key"]}, account["signing_secret"]

    async def report(client: Any, what: str, **payload: Any) -> Any:
        body = orjson.dumps(payload)
        async with system.client("admin") as admin:
            now = (await admin.get("/api/v1/channels/internal/clock")).json()["now"]
        from datetime import datetime

        t = int(datetime.fromisoformat(now).timestamp())
        headers = {**key, "content-type": "application/json"}
        headers["x-hotline-signature"] = signature_header(secret, t, body)
        return await client.post(
            f"/api/v1/channels/cti/calls/{what}", content=body, headers=headers
        )

    async with system.client() as cti, system.client("operator") as operator:
        assert (await report(cti, "started", call_id="int-c-1", caller=CALLER)).status_code == 200
        await report(cti, "answered", call_id="int-c-1", agent="operator")
        r = await operator.post(
            "/api/v1/intake/tickets",
            json={
                "channel": "phone",
                "type": "complaint",
                "matter_code": "ENV-001",
                "district": "120105",
                "content": "楼下商铺夜间施工噪声扰民",
                "requester": {"name": "赵敏", "phone": CALLER},
            },
        )
        assert r.status_code == 201, r.text
        ticket_id = r.json()["ticket_id"]
        history = await operator.get("/api/v1/channels/cti/calls/int-c-1/caller-tickets")
        assert history.status_code == 200 and history.json()["count"] == 1
        await report(cti, "ended", call_id="int-c-1", ticket_id=ticket_id)
        answers = await asyncio.gather(
            *(report(cti, "rated", call_id="int-c-1", key="2") for _ in "12")
        )
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]

    async def rated() -> list[Any]:
        return [
            e for e in await tickets_of(system, "ticket.call_rated") if e.ticket_id == ticket_id
        ]

    [rating] = await eventually(rated, "the call rating")
    assert rating.payload["rating"] == "basically_satisfied"
    await asyncio.sleep(1.0)
    assert len(await rated()) == 1


class Receiver:
    def __init__(self) -> None:
        self.statuses = [500, 500, 500]
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 204)


@pytest_asyncio.fixture(loop_scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield hook, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await task


async def test_a_webhook_failing_three_times_is_delivered_on_the_fourth_try(
    system: System, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    async with system.client("admin") as admin, system.client("operator") as operator:
        r = await admin.post(
            "/api/v1/channels/webhooks/subscriptions",
            json={"url": url, "event_types": ["ticket.flagged"]},
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        r = await operator.post(
            "/api/v1/intake/tickets",
            json={
                "channel": "phone",
                "type": "help",
                "matter_code": "GAS-001",
                "district": "120101",
                "content": "闻到燃气味，家里老人说不想活了",
                "requester": {"name": "钱进", "phone": "13920007777"},
            },
        )
        assert r.status_code == 201, r.text
        await eventually(lambda: _count(hook, 1), "the first try")
        for seconds in (30, 60, 120):
            tries = len(hook.received)

            async def recorded(n: int = tries) -> bool:
                listed = await admin.get("/api/v1/channels/webhooks/deliveries")
                return bool(listed.json()["data"][0]["attempts"] == n)

            await eventually(recorded, "the failure recorded")
            moved = await admin.put(
                "/api/v1/channels/internal/clock", json={"advance_seconds": seconds}
            )
            assert moved.status_code == 200, moved.text
            await eventually(lambda n=tries: _count(hook, n + 1), f"the retry after {seconds}s")
    headers, body = hook.received[-1]
    parts = dict(p.split("=", 1) for p in headers["x-hotline-signature"].split(","))
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(mac.hexdigest(), parts["v1"])
    assert orjson.loads(body)["type"] == "ticket.flagged"
    assert len({h["x-hotline-delivery"] for h, _ in hook.received}) == 1


async def _count(hook: Receiver, n: int) -> bool:
    return len(hook.received) >= n


async def test_open311_answers_follow_the_spec_and_the_ticket(system: System) -> None:
    from xml.etree import ElementTree

    from services.channels.open311 import REQUEST_FIELDS, SERVICE_FIELDS

    key = (await create_account(system, name="随手拍 App", scope="tickets", channel="web"))[
        "api_key"
    ]
    async with system.client() as public, system.client("unit_water") as unit:
        services = (await public.get("/open311/v2/services.json")).json()
        assert all(tuple(s) == SERVICE_FIELDS for s in services)
        assert {"WATER-001", "URBAN-005"} <= {s["service_code"] for s in services}
        r = await public.post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "jurisdiction_id": "tianjin.gov.cn",
                "service_code": "WATER-001",
                "address_string": "河东区大王庄街道某小区",
                "description": "整栋楼停水一天了",
                "first_name": "伟",
                "last_name": "孙",
                "phone": "13920004444",
            },
        )
        assert r.status_code == 201, r.text
        ticket_id = r.json()[0]["service_request_id"]

        async def dispatched() -> Any:
            [req] = (await public.get(f"/open311/v2/requests/{ticket_id}.json")).json()
            return req if req["agency_responsible"] else None

        request = await eventually(dispatched, "the request dispatched")
        assert tuple(request) == REQUEST_FIELDS
        assert (
            request["status"] == "open" and request["agency_responsible"] == "天津水务集团有限公司"
        )
        assert (await unit.post(f"/api/v1/dispatch/tickets/{ticket_id}/accept")).status_code == 200

        async def expected() -> Any:
            r = await public.get(f"/open311/v2/requests/{ticket_id}.xml")
            [req] = list(ElementTree.fromstring(r.content))
            return req if req.findtext("expected_datetime") else None

        request_xml = await eventually(expected, "the SLA clock's expected time")
        assert tuple(child.tag for child in request_xml) == REQUEST_FIELDS
        assert request_xml.findtext("expected_datetime", "").endswith("+08:00")
    events = await tickets_of(system, "ticket.registered")
    assert [e.payload["channel"] for e in events if e.ticket_id == ticket_id] == ["web"]


async def test_a_provider_down_for_a_while_gets_the_message_once(
    system: System, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.statuses = [503, 503, 503]
    system.kill("channels")  # back with an SMS provider configured
    system.start("channels", extra_env={"HOTLINE_SMS_URL": url, "HOTLINE_NOTIFY_QUIET_HOURS": ""})
    await system.wait_ready("channels")
    async with system.client("admin") as admin, system.client("operator") as operator:
        r = await admin.put(
            "/api/v1/channels/notifications/units/city-water", json={"phones": ["13820001111"]}
        )
        assert r.status_code == 200, r.text
        before = len(hook.received)
        r = await operator.post(
            "/api/v1/intake/tickets",
            json={
                "channel": "phone",
                "type": "help",
                "matter_code": "WATER-003",
                "district": "120102",
                "content": "路口供水管道爆裂，水漫到马路上",
                "requester": {"name": "周涛", "phone": "13920006666"},
            },
        )
        assert r.status_code == 201, r.text
        ticket_id = r.json()["ticket_id"]

        async def notice() -> Any:
            listed = await admin.get(
                "/api/v1/channels/notifications", params={"ticket_id": ticket_id}
            )
            rows = listed.json()["data"]
            return rows[0] if rows else None

        for seconds in (0, 30, 60, 120):
            if seconds:
                # the provider has answered the last try; the clock moves once the service
                # has recorded that failure (and so when to try again), not before: moved
                # first, the retry falls due a whole backoff after the move
                tries = len(hook.received) - before

                async def recorded(n: int = tries) -> bool:
                    return bool((await notice())["attempts"] == n)

                await eventually(recorded, f"try {tries} recorded")
                r = await admin.put(
                    "/api/v1/channels/internal/clock", json={"advance_seconds": seconds}
                )
                assert r.status_code == 200, r.text

                async def tried(n: int = tries) -> bool:
                    row = await notice()
                    return bool(row["attempts"] > n)

                await eventually(tried, f"the retry after {seconds}s")
            else:
                await eventually(notice, "the work order notice")
                await eventually(lambda: _count(hook, before + 1), "the first try")
        row = await eventually(lambda: _sent(notice), "the notice sent once the provider is back")
    assert row["attempts"] == 4
    sms = [orjson.loads(body) for _, body in hook.received[before:]]
    delivered = [s for s, status in zip(sms, [503, 503, 503, 200], strict=False) if status == 200]
    assert len(sms) == 4 and len(delivered) == 1
    assert ticket_id in delivered[0]["content"] and delivered[0]["phone"] == "13820001111"


async def _sent(notice: Any) -> Any:
    row = await notice()
    return row if row and row["status"] == "sent" else None
