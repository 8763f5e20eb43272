"""Channel accounts: an outside system's own API key, bound to one channel; the gateway
takes the key, and the ticket's channel comes from the account, never from the body."""

from __future__ import annotations

from services.channels.models import accounts
from tests.unit.channels.conftest import Platform

TICKET = {
    "type": "help",
    "matter_code": "WATER-001",
    "district": "120103",
    "address": "河西区友谊路街道某小区3号楼",
    "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
    "requester": {"name": "刘芳", "phone": "13920001234"},
}


async def test_an_account_key_is_shown_once_and_stored_only_as_a_hash(platform: Platform) -> None:
    created = await platform.create_account(name="天津12345 网站", scope="tickets", channel="web")
    key = created["api_key"]
    assert key.startswith("hk_") and len(key) > 40
    [row] = await platform.rows(accounts)
    assert key not in [str(v) for v in row]  # only the hash is kept
    listed = await platform.http.get(
        "/api/v1/channels/accounts", headers=await platform.as_user("admin")
    )
    assert "api_key" not in listed.json()["data"][0]
    assert listed.json()["data"][0]["key_prefix"] == key[:10]


async def test_only_the_admin_manages_accounts(platform: Platform) -> None:
    r = await platform.http.post(
        "/api/v1/channels/accounts",
        json={"name": "x", "scope": "cti"},
        headers=await platform.as_user("operator"),
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


async def test_an_account_is_bound_to_a_channel_its_scope_allows(platform: Platform) -> None:
    r = await platform.http.post(
        "/api/v1/channels/accounts",
        json={"name": "呼叫中心", "scope": "cti", "channel": "web"},
        headers=await platform.as_user("admin"),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "channel"
    cti = await platform.create_account(name="呼叫中心", scope="cti")
    assert cti["channel"] == "phone"


async def test_the_gateway_files_a_ticket_on_the_accounts_channel(platform: Platform) -> None:
    key = (await platform.create_account(name="小程序", scope="tickets", channel="wechat_mini"))[
        "api_key"
    ]
    for headers in ({"x-api-key": key}, {"authorization": f"ApiKey {key}"}):
        r = await platform.http.post("/api/v1/intake/tickets", json=TICKET, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["channel"] == "wechat_mini"
    # the body cannot move the ticket to another channel
    r = await platform.http.post(
        "/api/v1/intake/tickets", json={**TICKET, "channel": "phone"}, headers={"x-api-key": key}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "channel"
    registered = await platform.emitted("ticket.registered")
    assert [e.payload["channel"] for e in registered] == ["wechat_mini", "wechat_mini"]


async def test_the_public_website_cannot_file_a_phone_ticket(platform: Platform) -> None:
    r = await platform.http.post(
        "/api/v1/intake/tickets",
        json={**TICKET, "channel": "phone"},
        headers=await platform.as_user("citizen_web"),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "channel"


async def test_a_revoked_or_unknown_key_is_refused(platform: Platform) -> None:
    created = await platform.create_account(name="网站", scope="tickets", channel="web")
    key = created["api_key"]
    r = await platform.http.post("/api/v1/intake/tickets", json=TICKET, headers={"x-api-key": key})
    assert r.status_code == 201
    revoked = await platform.http.post(
        f"/api/v1/channels/accounts/{created['account_id']}/revoke",
        headers=await platform.as_user("admin"),
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    for attempt in (key, "hk_" + "x" * 43):
        r = await platform.http.post(
            "/api/v1/intake/tickets", json=TICKET, headers={"x-api-key": attempt}
        )
        assert r.status_code == 401
        assert r.json()["detail"] == "unknown or revoked API key"


async def test_only_the_gateway_may_ask_whose_key_it_is(platform: Platform) -> None:
    r = await platform.http.post(
        "/api/v1/channels/internal/api-keys/verify",
        json={"api_key": "hk_x"},
        headers=await platform.as_user("admin"),
    )
    assert r.status_code == 404  # to anyone but the gateway it does not exist
