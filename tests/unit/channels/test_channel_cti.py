"""The phone system's webhooks: signed, idempotent by call id; the operator's look at the
caller's earlier tickets is audited; the IVR key press becomes the Art 14 (1) rating."""

from __future__ import annotations

from typing import Any

from services.channels.models import caller_history_reads
from services.intake.models import requester_reads
from tests.unit.channels.conftest import Platform, signed
from tests.unit.channels.test_channel_accounts import TICKET

CALLER = "13920001234"


async def phone_system(platform: Platform) -> tuple[dict[str, str], str]:
    account = await platform.create_account(name="呼叫中心 CTI", scope="cti")
    return {"x-api-key": account["api_key"]}, account["signing_secret"]


async def report(
    platform: Platform, api_key: dict[str, str], secret: str, what: str, **payload: Any
) -> Any:
    body, headers = signed(secret, payload, platform.clock.now())
    return await platform.http.post(
        f"/api/v1/channels/cti/calls/{what}", content=body, headers={**api_key, **headers}
    )


async def operator_registers(platform: Platform) -> str:
    r = await platform.http.post(
        "/api/v1/intake/tickets",
        json={**TICKET, "channel": "phone"},
        headers=await platform.as_user("operator"),
    )
    assert r.status_code == 201, r.text
    return r.json()["ticket_id"]  # type: ignore[no-any-return]


async def test_a_call_is_reported_and_its_ivr_rating_recorded_once(platform: Platform) -> None:
    key, secret = await phone_system(platform)
    r = await report(platform, key, secret, "started", call_id="c-1", caller=CALLER)
    assert r.status_code == 200, r.text
    assert r.json()["caller"] == CALLER
    r = await report(platform, key, secret, "answered", call_id="c-1", agent="operator")
    assert r.json()["agent"] == "operator"
    ticket_id = await operator_registers(platform)
    r = await report(platform, key, secret, "ended", call_id="c-1", ticket_id=ticket_id)
    assert r.json()["ticket_id"] == ticket_id
    for _ in range(2):  # the IVR reports the key press twice
        r = await report(platform, key, secret, "rated", call_id="c-1", key="1")
        assert r.status_code == 200, r.text
        assert r.json()["rating"] == "satisfied"
    [rated] = await platform.emitted("ticket.call_rated")
    assert rated.ticket_id == ticket_id and rated.payload["rating"] == "satisfied"
    # a repeated end is no new event either
    await report(platform, key, secret, "ended", call_id="c-1")
    [ended] = await platform.emitted("channel.call_ended")
    assert ended.payload["call_id"] == "c-1" and CALLER not in ended.to_json().decode()


async def test_an_unsigned_or_forged_report_is_refused(platform: Platform) -> None:
    key, secret = await phone_system(platform)
    body, headers = signed("not-the-secret", {"call_id": "c-2", "caller": CALLER})
    r = await platform.http.post(
        "/api/v1/channels/cti/calls/started", content=body, headers={**key, **headers}
    )
    assert r.status_code == 403
    r = await platform.http.post(
        "/api/v1/channels/cti/calls/started",
        json={"call_id": "c-2", "caller": CALLER},
        headers=key,
    )
    assert r.status_code == 403
    # and a web client's key is no phone system
    web = await platform.create_account(name="网站", scope="tickets", channel="web")
    r = await report(
        platform,
        {"x-api-key": web["api_key"]},
        web["signing_secret"],
        "started",
        call_id="c-3",
        caller=CALLER,
    )
    assert r.status_code == 403


async def test_an_unknown_ivr_key_is_refused(platform: Platform) -> None:
    key, secret = await phone_system(platform)
    await report(platform, key, secret, "started", call_id="c-4", caller=CALLER)
    r = await report(platform, key, secret, "rated", call_id="c-4", key="9")
    assert r.status_code == 422
    assert await platform.emitted("ticket.call_rated") == []


async def test_the_callers_earlier_tickets_are_an_audited_read(platform: Platform) -> None:
    key, secret = await phone_system(platform)
    earlier = await operator_registers(platform)
    await report(platform, key, secret, "started", call_id="c-5", caller=CALLER)
    await report(platform, key, secret, "answered", call_id="c-5", agent="operator")
    r = await platform.http.get(
        "/api/v1/channels/cti/calls/c-5/caller-tickets", headers=await platform.as_user("operator")
    )
    assert r.status_code == 200, r.text
    assert [t["ticket_id"] for t in r.json()["tickets"]] == [earlier]
    [read] = await platform.rows(caller_history_reads)
    assert (read.reader, read.call_id, read.tickets) == ("operator", "c-5", [earlier])
    async with platform.ctx("intake").db.engine.connect() as conn:
        purposes = [r.purpose for r in (await conn.execute(requester_reads.select())).all()]
    assert purposes == ["phone search"]
    # the phone system itself may not look
    r = await platform.http.get("/api/v1/channels/cti/calls/c-5/caller-tickets", headers=key)
    assert r.status_code == 403
