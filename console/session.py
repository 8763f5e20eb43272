"""Sign-in for the console: a thin layer over the gateway's login API. The access token
lives in an HttpOnly, SameSite cookie (never readable by page scripts); every form and
htmx request carries a CSRF token derived from that cookie with a server key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request
from starlette.responses import Response

SESSION_COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class User:
    """Who is signed in, as the token says; the gateway checks the token on every call."""

    token: str
    username: str
    name: str
    role: str
    unit_id: str | None
    expires: int


class NotSignedIn(Exception):
    """No valid session: the page sends the browser to the sign-in page."""


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


def _key(request: Request) -> bytes:
    secret: str = request.app.state.console.secret
    return hashlib.sha256(b"console-csrf\0" + secret.encode()).digest()


def csrf_for(request: Request, session_value: str) -> str:
    mac = hmac.new(_key(request), session_value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def user_from(request: Request) -> User | None:
    """The session's user, read from the token's claims without trusting them: the
    gateway verifies the token on each API call, the console only uses them for menus."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return User(
        token=token,
        username=str(claims.get("sub", "")),
        name=str(claims.get("name") or claims.get("sub", "")),
        role=str(claims.get("role", "")),
        unit_id=claims.get("unit_id"),
        expires=int(claims.get("exp", 0)),
    )


def require_user(request: Request) -> User:
    user = user_from(request)
    if user is None:
        raise NotSignedIn()
    return user


async def check_csrf(request: Request) -> None:
    """For every POST: the token from the form field or the htmx header must match."""
    session = request.cookies.get(SESSION_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not session or not sent or not hmac.compare_digest(sent, csrf_for(request, session)):
        raise CsrfFailed()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or request.app.state.console.secure_cookies,
        path="/",
    )


def start_session(request: Request, response: Response, token: str, expires_in: int) -> None:
    set_cookie(request, response, SESSION_COOKIE, token, expires_in)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
