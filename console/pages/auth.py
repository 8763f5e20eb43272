"""Sign-in, sign-out and the start page (each role lands on its own work)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from console.app import api, home_for, render
from console.client import ApiError
from console.session import (
    LOGIN_CSRF_COOKIE,
    check_csrf,
    end_session,
    new_login_csrf,
    set_cookie,
    start_session,
    user_from,
)

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(request: Request, status: int = 200, **context: object) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    response = render(request, "login.html", status, login_csrf=token, **context)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/", expired: int = 0) -> Response:
    return _login_page(request, next=_safe_next(next), expired=bool(expired))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _login_page(request, 403, next=_safe_next(next), error="表单已失效，请重新登录")
    try:
        answer = await api(request).call(
            "POST", "/api/v1/auth/login", None, json={"username": username, "password": password}
        )
    except ApiError as exc:
        message = "用户名或密码错误" if exc.status in (401, 422) else exc.message
        return _login_page(request, 401, next=_safe_next(next), error=message, username=username)
    role = answer["user"]["role"]
    target = _safe_next(next)
    response = RedirectResponse(home_for(role) if target == "/" else target, status_code=303)
    start_session(request, response, answer)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Ends the sign-in session at the gateway too: its refresh token stops at once."""
    await check_csrf(request)
    user = user_from(request)
    if user is not None:
        try:
            await api(request).call("POST", "/api/v1/auth/logout", user.token)
        except ApiError:
            pass  # already ended: the cookies go all the same
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    user = user_from(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(user.role), status_code=303)
