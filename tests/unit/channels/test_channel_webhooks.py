"""Outgoing webhooks against a real local HTTP receiver: signed deliveries, retries with
back-off on the service clock, dead letters after the window, redelivery, and a unit's
system getting only its own tickets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

import orjson
import pytest

from services.channels.models import deliveries
from shared.events import TicketAccepted, TicketDispatched
from tests.unit.channels.conftest import T0, Platform, Receiver, eventually


def dispatched(ticket_id: str, unit_id: str) -> TicketDispatched:
    return TicketDispatched(
        ticket_id=ticket_id,
        unit_id=unit_id,
        matter_code="WATER-001",
        district="120103",
        type="help",
        urgency="livelihood",
        dispatched_at=T0,
    )


async def subscribe(platform: Platform, who: str, **body: Any) -> dict[str, Any]:
    r = await platform.http.post(
        "/api/v1/channels/webhooks/subscriptions", json=body, headers=await platform.as_user(who)
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers["x-hotline-signature"].split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def delivery(platform: Platform) -> Any:
    [row] = await platform.rows(deliveries)
    return row


async def test_a_receiver_failing_three_times_gets_the_fourth_try_signed(
    platform: Platform, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    sub = await subscribe(platform, "admin", url=receiver.url, event_types=["ticket.*"])
    receiver.statuses = [500, 500, 500]
    await platform.publish(dispatched("TJ20260302000001", "city-water"))
    await eventually(lambda: len(receiver.received) == 1, "the first try")
    for seconds in (30, 60, 120):  # back-off: 30 s, then doubling
        before = len(receiver.received)
        await eventually(lambda n=before: _attempts(platform, n), f"attempt {before} recorded")
        platform.advance(seconds=seconds - 1)
        await asyncio.sleep(0.05)
        assert len(receiver.received) == before, "retried before its time"
        platform.advance(seconds=1)
        await eventually(
            lambda n=before: len(receiver.received) == n + 1, f"retry after {seconds}s"
        )
    row = await eventually(lambda: _delivered(platform), "the delivery marked delivered")
    assert row.attempts == 4
    headers, body = receiver.received[-1]
    assert verifies(sub["secret"], headers, body)
    assert not verifies("another-secret", headers, body)
    event = orjson.loads(body)
    assert event["type"] == "ticket.dispatched" and event["ticket_id"] == "TJ20260302000001"
    assert headers["x-hotline-event"] == "ticket.dispatched"
    assert headers["x-hotline-delivery"] == row.delivery_id
    log = await platform.http.get(
        f"/api/v1/channels/webhooks/deliveries/{row.delivery_id}",
        headers=await platform.as_user("admin"),
    )
    assert [a["status_code"] for a in log.json()["log"]] == [500, 500, 500, 200]
    # the receiver's outage is logged when it starts and when it ends, not per try
    lines = [r for r in caplog.records if r.name.startswith("hotline.channels")]
    assert [r.getMessage() for r in lines if r.levelno >= logging.WARNING] == [
        "webhook endpoint failed; retrying with back-off until it works",
        "webhook endpoint works again",
    ]
    started, ended = (r.__dict__ for r in lines if r.levelno >= logging.WARNING)
    assert started["subscription"] == sub["subscription_id"] and started["error"] == "HTTP 500"
    assert ended["failed_tries"] == 3 and ended["deliveries"] == 1
    assert not [r for r in lines if receiver.url in str(r.__dict__)]


async def _attempts(platform: Platform, n: int) -> bool:
    return bool((await delivery(platform)).attempts == n)


async def _delivered(platform: Platform) -> Any:
    row = await delivery(platform)
    return row if row.status == "delivered" else None


async def test_after_the_window_a_delivery_is_dead_lettered_and_can_be_redelivered(
    platform: Platform, receiver: Receiver
) -> None:
    await subscribe(platform, "admin", url=receiver.url, event_types=["ticket.dispatched"])
    receiver.statuses = [503] * 100
    await platform.publish(dispatched("TJ20260302000002", "city-water"))
    await eventually(lambda: len(receiver.received) == 1, "the first try")
    for _ in range(40):  # hour by hour through the 24 h window
        platform.advance(hours=1)
        await asyncio.sleep(0.02)
        row = await delivery(platform)
        if row.status == "dead":
            break
    row = await eventually(lambda: _status(platform, "dead"), "the delivery given up")
    [failed] = await platform.emitted("channel.delivery_failed")
    assert failed.payload["delivery_id"] == row.delivery_id
    assert failed.payload["last_status_code"] == 503
    tries = len(receiver.received)
    receiver.statuses = []
    r = await platform.http.post(
        f"/api/v1/channels/webhooks/deliveries/{row.delivery_id}/redeliver",
        headers=await platform.as_user("admin"),
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: _status(platform, "delivered"), "the redelivery")
    assert len(receiver.received) == tries + 1


async def _status(platform: Platform, status: str) -> Any:
    row = await delivery(platform)
    return row if row.status == status else None


async def test_a_units_system_receives_only_its_own_tickets(
    platform: Platform, receiver: Receiver
) -> None:
    await subscribe(platform, "unit_water", url=receiver.url, event_types=["*"])
    r = await platform.http.post(
        "/api/v1/channels/webhooks/subscriptions",
        json={"url": receiver.url, "event_types": ["*"], "unit_id": "120101-housing"},
        headers=await platform.as_user("unit_water"),
    )
    assert r.status_code == 403
    await platform.publish(
        dispatched("TJ20260302000003", "city-water"),
        dispatched("TJ20260302000004", "120101-housing"),
        TicketAccepted(ticket_id="TJ20260302000004", unit_id="120101-housing", accepted_at=T0),
        TicketAccepted(ticket_id="TJ20260302000003", unit_id="city-water", accepted_at=T0),
    )
    await eventually(lambda: len(receiver.received) == 2, "the unit's two events")
    await asyncio.sleep(0.05)
    got = [(orjson.loads(b)["type"], orjson.loads(b)["ticket_id"]) for _, b in receiver.received]
    assert sorted(got) == [
        ("ticket.accepted", "TJ20260302000003"),
        ("ticket.dispatched", "TJ20260302000003"),
    ]
