"""The citizen web channel: a public, phone-friendly page to submit a request (Art 5
real-name choice) and to look up its progress with ticket number and phone. The page
signs in to the API as the web channel's own account; a citizen signs in to nothing."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.app import ConsoleState, api, templates
from console.client import ApiError
from console.pages.common import text, values
from console.session import LOGIN_CSRF_COOKIE, new_login_csrf, set_cookie

router = APIRouter()


class ChannelToken:
    """The web channel's bearer token, renewed a minute before it expires."""

    token: str | None = None
    expires: float = 0.0


async def channel_token(request: Request) -> str:
    state: ConsoleState = request.app.state.console
    if ChannelToken.token and time.time() < ChannelToken.expires - 60:
        return ChannelToken.token
    if not state.web_channel_password:
        raise ApiError(503, "the web channel account is not configured")
    answer = await api(request).call(
        "POST",
        "/api/v1/auth/login",
        None,
        json={"username": state.web_channel_user, "password": state.web_channel_password},
    )
    ChannelToken.token = answer["access_token"]
    ChannelToken.expires = time.time() + int(answer["expires_in"])
    return str(ChannelToken.token)


def _page(request: Request, status: int = 200, **context: Any) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    context.setdefault("form", {"type": "complaint", "district": "120101", "realname": "yes"})
    context.setdefault("errors", {})
    response = templates.TemplateResponse(
        request, "public.html", {"public_csrf": token, **context}, status_code=status
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


def _csrf_ok(request: Request, form: Any) -> bool:
    import hmac

    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = text(form, "csrf_token") or ""
    return bool(expected) and hmac.compare_digest(expected, sent)


@router.get("/public")
async def public_page(request: Request) -> Response:
    matters = await api(request).call("GET", "/api/v1/intake/matters", await channel_token(request))
    return _page(request, matters=matters)


@router.post("/public/submit")
async def submit(request: Request) -> Response:
    form = await request.form()
    token = await channel_token(request)
    matters = await api(request).call("GET", "/api/v1/intake/matters", token)
    if not _csrf_ok(request, form):
        return _page(
            request, 403, matters=matters, form=values(form), problem="页面已过期，请重新提交"
        )
    anonymous = text(form, "realname") == "no"
    body = {
        "channel": "web",
        "type": text(form, "type"),
        "matter_code": text(form, "matter_code"),
        "district": text(form, "district"),
        "address": text(form, "address"),
        "content": text(form, "content"),
        "anonymous": anonymous,
        "requester": {
            "name": None if anonymous else text(form, "requester_name"),
            "phone": text(form, "requester_phone"),
        },
    }
    try:
        ticket = await api(request).call("POST", "/api/v1/intake/tickets", token, json=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return _page(
            request,
            422,
            matters=matters,
            form=values(form),
            errors=exc.field_errors,
            problem=exc.message,
        )
    return _page(request, 201, matters=matters, submitted=ticket)


@router.post("/public/lookup")
async def lookup(request: Request) -> Response:
    form = await request.form()
    token = await channel_token(request)
    matters = await api(request).call("GET", "/api/v1/intake/matters", token)
    if not _csrf_ok(request, form):
        return _page(request, 403, matters=matters, problem="页面已过期，请重新查询")
    try:
        found = await api(request).call(
            "POST",
            "/api/v1/intake/tickets/lookup",
            token,
            json={"ticket_id": text(form, "ticket_id") or "", "phone": text(form, "phone") or ""},
        )
    except ApiError as exc:
        if exc.status not in (404, 422):
            raise
        return _page(
            request, 404, matters=matters, lookup_problem="没有找到该工单号与电话对应的诉求"
        )
    return _page(request, matters=matters, found=found)
