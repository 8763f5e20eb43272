"""The console's session layer over the gateway's login: an HttpOnly, SameSite cookie,
CSRF on every form, no open redirect; and the pure helpers behind the pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import httpx
import pytest

from console.i18n import shanghai, time_left
from console.pages.admin import day_class
from console.pages.knowledge import marked
from gateway.app import create_gateway_app
from shared.settings import Settings


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (no services behind it: sign-in is the gateway's own) as a browser sees
    it, cookies kept between requests."""
    app = create_gateway_app(Settings(), transports={})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            yield client


def _login_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, next_: str = "/") -> httpx.Response:
    form = await browser.get("/login")
    return await browser.post(
        "/login",
        data={
            "username": "agency",
            "password": "demo12345",
            "csrf_token": _login_token(form.text),
            "next": next_,
        },
    )


async def test_signing_in_sets_an_httponly_samesite_cookie_and_lands_on_the_roles_page(
    browser: httpx.AsyncClient,
) -> None:
    answer = await sign_in(browser)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/agency/dispatch"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "hotline_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_a_wrong_password_stays_on_the_sign_in_page_in_chinese(
    browser: httpx.AsyncClient,
) -> None:
    form = await browser.get("/login")
    answer = await browser.post(
        "/login",
        data={"username": "agency", "password": "wrong", "csrf_token": _login_token(form.text)},
    )
    assert answer.status_code == 401
    assert "用户名或密码错误" in answer.text
    assert "hotline_session" not in browser.cookies


async def test_sign_in_without_the_forms_token_is_refused(browser: httpx.AsyncClient) -> None:
    await browser.get("/login")
    answer = await browser.post(
        "/login", data={"username": "agency", "password": "demo12345", "csrf_token": "forged"}
    )
    assert answer.status_code == 403
    assert "hotline_session" not in browser.cookies


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    browser: httpx.AsyncClient,
) -> None:
    await sign_in(browser)
    forged = await browser.post("/tickets/TJ20260101000001/act", data={"action": "accept"})
    assert forged.status_code == 403
    assert "表单已失效" in forged.text
    logout = await browser.post("/logout", data={"csrf_token": "not-the-token"})
    assert logout.status_code == 403


async def test_the_next_page_after_sign_in_never_leaves_the_site(
    browser: httpx.AsyncClient,
) -> None:
    answer = await sign_in(browser, next_="//evil.example/phish")
    assert answer.headers["location"] == "/agency/dispatch"


async def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    browser: httpx.AsyncClient,
) -> None:
    answer = await browser.get("/agency/board?status=overdue")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/agency/board%3Fstatus%3Doverdue"


async def test_the_docs_page_loads_swagger_ui_from_the_platform(
    browser: httpx.AsyncClient,
) -> None:
    page = (await browser.get("/docs")).text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    bundle = await browser.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000


def test_a_screening_finding_is_marked_at_its_position_and_the_rest_escaped() -> None:
    text = "<b>电话</b>13812345678请勿外传"
    html = marked(text, [{"kind": "mobile", "position": 9, "length": 11}])
    assert html == (
        "&lt;b&gt;电话&lt;/b&gt;"
        '<mark class="refused" data-kind="mobile" title="mobile">13812345678</mark>请勿外传'
    )


def test_calendar_days_are_classed_official_adjusted_overridden_or_provisional() -> None:
    assert day_class({"date": date(2026, 10, 1), "working": False, "source": "official"}) == (
        "day-official-off"
    )
    assert day_class({"date": date(2026, 9, 20), "working": True, "source": "official"}) == (
        "day-adjusted"
    )
    assert day_class({"date": date(2026, 6, 3), "working": False, "source": "override"}) == (
        "day-official-off day-override"
    )
    assert day_class({"date": date(2027, 3, 3), "working": True, "source": "provisional"}) == (
        "day-official-work day-provisional"
    )


def test_times_are_shown_in_shanghai_with_what_is_left() -> None:
    now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert shanghai("2026-03-02T01:00:00Z") == "2026-03-02 09:00"
    assert time_left("2026-03-02T03:05:00+00:00", now) == "剩余 2小时05分"
    assert time_left("2026-03-02T00:48:00+00:00", now) == "已超时 12分00秒"
