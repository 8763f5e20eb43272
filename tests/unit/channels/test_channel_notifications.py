"""Notifications to citizens and units, sent to a local stand-in of the SMS gateway and of
WeChat's template message API speaking their request formats: sent once each, retried
while the provider is down, held through quiet hours unless urgent, opt-out honoured. A
provider that cannot be reached is an outage, logged once when it starts and once when it
ends, not per failed send; a message the provider refuses (4xx) is logged for itself, never
with its recipient or text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from services.channels.models import notifications
from shared.events import ClockWarning, Overdue, TicketAccepted, TicketDispatched
from tests.conftest import at
from tests.unit.channels.conftest import (
    T0,
    Platform,
    Receiver,
    eventually,
    running_platform,
    signed,
)
from tests.unit.channels.test_channel_wechat import WeChatServer, official_account, text_xml

SMS, TEMPLATE = "/sms/send", "/wechat/template/send"


@asynccontextmanager
async def notifying(tmp: Path, **settings: Any) -> AsyncIterator[Platform]:
    """The platform with the providers ``settings`` name, and a phone for the unit."""
    async with running_platform(tmp, **settings) as platform:
        await platform.http.put(
            "/api/v1/channels/notifications/units/city-water",
            json={"phones": ["13820001111"]},
            headers=await platform.as_user("admin"),
        )
        yield platform


@pytest.fixture
async def notified(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Platform]:
    async with notifying(
        tmp_path,
        sms_url=receiver.url_of(SMS),
        wechat_template_url=receiver.url_of(TEMPLATE),
        sms_templates={"registered": "SMS_100001", "work_order": "SMS_100005"},
        wechat_template_ids={"registered": "TPL-registered", "accepted": "TPL-accepted"},
    ) as platform:
        yield platform


def dispatched(ticket_id: str, urgency: str = "livelihood") -> TicketDispatched:
    return TicketDispatched(
        ticket_id=ticket_id,
        unit_id="city-water",
        matter_code="WATER-001",
        district="120103",
        type="help",
        urgency=urgency,  # type: ignore[arg-type]
        dispatched_at=T0,
    )


async def sent(platform: Platform) -> list[Any]:
    return [r for r in await platform.rows(notifications) if r.status == "sent"]


async def test_a_wechat_follower_gets_the_number_by_template_message_and_sms(
    notified: Platform, receiver: Receiver
) -> None:
    wechat = WeChatServer(notified, await official_account(notified))
    wechat.reply(await wechat.post(text_xml("小区停水了，联系电话13920001234", "3001")))
    [registered] = await notified.emitted("ticket.registered")
    await eventually(lambda: len(receiver.taken(SMS)) == 1 and receiver.taken(TEMPLATE), "both")
    [template] = receiver.taken(TEMPLATE)
    assert template["touser"] == "oX7k2s9dLq3mN0pR4tV6wY8zA1bC"
    assert template["template_id"] == "TPL-registered"
    assert template["data"]["keyword1"]["value"] == registered.ticket_id
    assert template["url"].endswith(f"ticket_id={registered.ticket_id}")
    [sms] = receiver.taken(SMS)
    assert sms["phone"] == "13920001234" and sms["template_code"] == "SMS_100001"
    assert sms["sign_name"] == "天津12345"
    assert sms["content"].startswith("【天津12345】您的诉求已受理，工单号" + registered.ticket_id)
    # acceptance by the unit is told too (through the WeChat template)
    await notified.publish(
        TicketAccepted(ticket_id=registered.ticket_id, unit_id="city-water", accepted_at=T0)
    )
    await eventually(lambda: len(receiver.taken(TEMPLATE)) == 2, "the acceptance")
    assert receiver.taken(TEMPLATE)[1]["template_id"] == "TPL-accepted"


async def three_sent_through_six_503s(platform: Platform, receiver: Receiver, serial: int) -> None:
    """Three messages to the unit while the provider answers 503 six times, then 200."""
    receiver.statuses = [503] * 6
    first, second = (f"TJ20260302{n:06d}" for n in (serial, serial + 1))
    await platform.publish(dispatched(first), dispatched(second))
    await platform.publish(
        ClockWarning(
            ticket_id=first,
            clock="acceptance",
            unit_id="city-water",
            deadline=at("2026-03-02 11:00"),
            warned_at=T0,
        )
    )
    await eventually(lambda: len(receiver.received) >= 3, "the first tries")
    for _ in range(20):  # the provider comes back while the retries go on
        if len(receiver.taken(SMS)) == 3:
            break
        await eventually(lambda: _settled(platform, receiver), "the attempts recorded")
        platform.advance(minutes=1)
    await eventually(lambda: len(receiver.taken(SMS)) == 3, "all three sent")
    await eventually(lambda: _settled(platform, receiver), "the last attempts recorded")


async def test_a_provider_down_for_a_while_gets_every_message_once(
    notified: Platform, receiver: Receiver
) -> None:
    await three_sent_through_six_503s(notified, receiver, 101)
    texts = sorted(body["content"] for body in receiver.taken(SMS))
    assert len(set(texts)) == 3  # each exactly once
    assert receiver.answered.count(503) == 6 and len(receiver.received) == 9
    assert any("签收时限即将届满（03月02日11:00）" in t for t in texts)
    assert all(body["phone"] == "13820001111" for body in receiver.taken(SMS))
    assert len(await sent(notified)) == 3


async def test_a_provider_down_through_the_window_fails_the_message_visibly(
    notified: Platform, receiver: Receiver
) -> None:
    receiver.statuses = [503] * 1000
    await notified.publish(dispatched("TJ20260302000103"))
    await eventually(lambda: len(receiver.received) == 1, "the first try")
    for _ in range(40):  # hour by hour through the delivery window
        await eventually(lambda: _settled(notified, receiver), "the attempts recorded")
        [row] = await notified.rows(notifications)
        if row.status == "failed":
            break
        notified.advance(hours=1)
    [row] = await notified.rows(notifications)
    assert row.status == "failed" and row.next_attempt_at is None and row.failed_at is not None
    assert row.attempts == len(receiver.received) > 1
    [failed] = await notified.emitted("channel.notification_failed")
    assert failed.payload["notification_id"] == row.notification_id
    assert failed.payload["attempts"] == row.attempts
    assert failed.payload["last_status_code"] == 503
    assert await sent(notified) == []


async def _settled(platform: Platform, receiver: Receiver) -> bool:
    """Every request the provider saw is recorded, and nothing is due: no attempt in flight."""
    rows = await platform.rows(notifications)
    now = platform.clock.now()
    recorded = sum(r.attempts for r in rows) == len(receiver.received)
    return recorded and all(r.status != "pending" or r.next_attempt_at > now for r in rows)


async def test_non_urgent_messages_wait_out_the_quiet_hours(
    notified: Platform, receiver: Receiver
) -> None:
    notified.clock.set(at("2026-03-02 23:00"))
    await notified.publish(dispatched("TJ20260302000201"))
    await notified.publish(
        Overdue(
            ticket_id="TJ20260302000202",
            clock="completion",
            unit_id="city-water",
            deadline=at("2026-03-02 22:00"),
            detected_at=at("2026-03-02 23:00"),
            late_seconds=3600,
        )
    )
    [overdue] = await eventually(lambda: receiver.taken(SMS), "the urgent overdue at night")
    assert "已超期" in overdue["content"]
    notified.clock.set(at("2026-03-03 06:59"))
    await eventually(lambda: _settled(notified, receiver), "nothing due")
    assert len(receiver.taken(SMS)) == 1
    notified.clock.set(at("2026-03-03 07:00"))
    await eventually(lambda: len(receiver.taken(SMS)) == 2, "the work order in the morning")


async def test_a_follower_who_opts_out_gets_nothing_more(
    notified: Platform, receiver: Receiver
) -> None:
    wechat = WeChatServer(notified, await official_account(notified))
    wechat.reply(await wechat.post(text_xml("路灯不亮", "4001")))
    [registered] = await notified.emitted("ticket.registered")
    await eventually(lambda: len(receiver.taken(TEMPLATE)) == 1, "the registration notice")
    assert "退订" in wechat.reply(await wechat.post(text_xml("退订", "4002")))
    await notified.publish(
        TicketAccepted(ticket_id=registered.ticket_id, unit_id="city-water", accepted_at=T0)
    )
    rows = await eventually(
        lambda: _with_status(notified, "skipped"), "the acceptance notice skipped"
    )
    assert rows[0].last_error == "the recipient opted out"
    assert len(receiver.taken(TEMPLATE)) == 1


async def _with_status(platform: Platform, status: str) -> list[Any]:
    return [r for r in await platform.rows(notifications) if r.status == status]


async def test_a_caller_hears_of_their_ticket_by_sms(
    notified: Platform, receiver: Receiver
) -> None:
    account = await notified.create_account(name="呼叫中心 CTI", scope="cti")
    key = {"x-api-key": account["api_key"]}
    for what, payload in (
        ("started", {"call_id": "c-9", "caller": "13920009999"}),
        ("ended", {"call_id": "c-9", "ticket_id": "TJ20260302000301"}),
    ):
        body, headers = signed(account["signing_secret"], payload)
        r = await notified.http.post(
            f"/api/v1/channels/cti/calls/{what}", content=body, headers={**key, **headers}
        )
        assert r.status_code == 200, r.text
    [sms] = await eventually(lambda: receiver.taken(SMS), "the caller's SMS")
    assert sms["phone"] == "13920009999" and "TJ20260302000301" in sms["content"]


async def test_without_a_provider_messages_are_kept_as_skipped(platform: Platform) -> None:
    await platform.http.put(
        "/api/v1/channels/notifications/units/city-water",
        json={"phones": ["13820001111"]},
        headers=await platform.as_user("admin"),
    )
    await platform.publish(dispatched("TJ20260302000401"))
    r = await platform.http.get(
        "/api/v1/channels/notifications",
        params={"status": "skipped"},
        headers=await platform.as_user("admin"),
    )
    [row] = r.json()["data"]
    assert row["last_error"] == "no SMS provider configured (HOTLINE_SMS_URL)"


PHONE = "13820001111"  # the unit's contact (test_channel_notifications.notified)
STARTED = "notification provider failed; retrying with back-off until it works"
ENDED = "notification provider works again"


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("hotline.channels")]


async def no_personal_data(platform: Platform, caplog: pytest.LogCaptureFixture) -> None:
    """No recipient and no message text in any channels log line."""
    rows = await platform.rows(notifications)
    assert rows and all(r.recipient == PHONE for r in rows)
    for record in lines(caplog):
        text = f"{record.getMessage()} {record.__dict__}"
        assert PHONE not in text and not any(r.text in text for r in rows), text


async def test_a_provider_down_for_six_sends_logs_one_start_and_one_end(
    notified: Platform, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    await three_sent_through_six_503s(notified, receiver, 501)
    assert receiver.answered.count(503) == 6

    messages = [r.getMessage() for r in lines(caplog)]
    assert messages.count(STARTED) == 1 and messages.count(ENDED) == 1, messages
    assert messages.index(STARTED) < messages.index(ENDED)
    [started] = [r for r in lines(caplog) if r.getMessage() == STARTED]
    assert started.levelno == logging.WARNING
    assert started.medium == "sms" and started.error == "HTTP 503"  # type: ignore[attr-defined]
    [ended] = [r for r in lines(caplog) if r.getMessage() == ENDED]
    assert ended.medium == "sms"  # type: ignore[attr-defined]
    assert ended.failed_tries == 6 and ended.notifications == 3  # type: ignore[attr-defined]
    assert ended.outage_seconds >= 0  # type: ignore[attr-defined]
    # nothing else about the failed sends in the log: they are in the rows
    assert not [
        r for r in lines(caplog) if r.levelno >= logging.WARNING and r not in (started, ended)
    ]
    rows = await notified.rows(notifications)
    assert sum(r.attempts for r in rows) == 9  # every try is in its row
    assert all(r.status == "sent" for r in rows)
    await no_personal_data(notified, caplog)


async def test_a_message_the_provider_refuses_is_logged_for_itself_not_as_an_outage(
    notified: Platform, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    receiver.statuses = [400]
    await notified.publish(dispatched("TJ20260302000601"))
    # settled is vacuously true before the notification's row exists: wait for the request
    await eventually(lambda: len(receiver.received) == 1, "the attempt")
    await eventually(lambda: _settled(notified, receiver), "the attempt recorded")
    [row] = await notified.rows(notifications)
    assert row.attempts == 1 and row.last_status_code == 400
    refused = [r for r in lines(caplog) if r.getMessage() == "notification refused by the provider"]
    assert [(r.notification, r.status) for r in refused] == [(row.notification_id, 400)]  # type: ignore[attr-defined]
    assert refused[0].levelno == logging.WARNING
    assert not [r for r in lines(caplog) if r.getMessage() in (STARTED, ENDED)]
    await no_personal_data(notified, caplog)
