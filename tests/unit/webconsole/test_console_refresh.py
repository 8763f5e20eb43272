"""The console keeps an active user signed in past the access token's 30 minutes through the
gateway's rotating refresh token, and signing out ends the session at the gateway. Time is
moved by making the session's access token an expired one (same session, same claims)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from gateway.app import create_gateway_app
from shared.settings import Settings

SECRET = Settings().jwt_secret


@pytest.fixture
async def admin() -> AsyncIterator[httpx.AsyncClient]:
    """The admin's browser, signed in to the console (the gateway alone: users and sign-in
    are its own)."""
    app = create_gateway_app(Settings(), transports={})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            form = await client.get("/login")
            signed_in = await client.post(
                "/login",
                data={
                    "username": "admin",
                    "password": "demo12345",
                    "csrf_token": csrf_of(form.text),
                },
            )
            assert signed_in.status_code == 303
            yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def expire_access_token(browser: httpx.AsyncClient) -> str:
    """Thirty-one minutes later: the session's access token, issued and expired in the past."""
    claims = jwt.decode(browser.cookies["hotline_session"], SECRET, algorithms=["HS256"])
    now = int(time.time())
    claims.update(iat=now - 31 * 60, exp=now - 60)
    expired = jwt.encode(claims, SECRET, algorithm="HS256")
    replace_cookie(browser, "hotline_session", expired)
    return expired


def replace_cookie(browser: httpx.AsyncClient, name: str, value: str) -> None:
    domain = next(c.domain for c in browser.cookies.jar if c.name == name)
    browser.cookies.set(name, value, domain=domain, path="/")


async def test_an_active_user_stays_signed_in_after_the_access_token_expires(
    admin: httpx.AsyncClient,
) -> None:
    before = await admin.get("/admin/users")
    form_token = csrf_of(before.text)
    old_refresh = admin.cookies["hotline_refresh"]
    expired = expire_access_token(admin)

    page = await admin.get("/admin/users")

    assert page.status_code == 200 and "用户管理" in page.text
    renewed = admin.cookies["hotline_session"]
    assert renewed != expired
    assert jwt.decode(renewed, SECRET, algorithms=["HS256"])["exp"] > time.time() + 25 * 60
    assert admin.cookies["hotline_refresh"] != old_refresh  # rotated: each is used once
    set_cookies = page.headers.get_list("set-cookie")
    assert all("HttpOnly" in c and "SameSite=strict" in c for c in set_cookies)
    # a form rendered before the renewal still posts: its CSRF token belongs to the session
    added = await admin.post(
        "/admin/users",
        data={
            "csrf_token": form_token,
            "username": f"clerk_{secrets.token_hex(4)}",
            "name": "王敏",
            "role": "operator",
            "password": "long-enough-1",
        },
    )
    assert added.status_code == 303, added.text


async def test_requests_arriving_together_share_one_renewal_and_the_session_survives(
    admin: httpx.AsyncClient,
) -> None:
    expire_access_token(admin)

    pages = await asyncio.gather(*(admin.get("/admin/users") for _ in range(4)))

    assert [p.status_code for p in pages] == [200] * 4
    # the gateway saw the refresh token once: presenting it twice would have revoked the session
    later = await admin.get("/admin/users")
    assert later.status_code == 200 and "用户管理" in later.text


async def test_a_refused_renewal_sends_the_browser_to_sign_in(admin: httpx.AsyncClient) -> None:
    expire_access_token(admin)
    replace_cookie(admin, "hotline_refresh", "not-a-refresh-token")

    page = await admin.get("/admin/users")

    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert "hotline_session" not in admin.cookies and "hotline_refresh" not in admin.cookies


async def test_signing_out_revokes_the_session_at_the_gateway(admin: httpx.AsyncClient) -> None:
    access = admin.cookies["hotline_session"]
    refresh = admin.cookies["hotline_refresh"]
    page = await admin.get("/admin/users")

    out = await admin.post("/logout", data={"csrf_token": csrf_of(page.text)})

    assert out.status_code == 303
    assert "hotline_session" not in admin.cookies and "hotline_refresh" not in admin.cookies
    again = await admin.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert again.status_code == 401
    me = await admin.get("/api/v1/auth/me", headers={"authorization": f"Bearer {access}"})
    assert me.status_code == 401
