"""Sign-in for the console: a thin layer over the gateway's login API. The access token and
the refresh token live in HttpOnly, SameSite cookies (never readable by page scripts); the
access token is renewed through the refresh token while the user works (``console.refresh``).
Every form and htmx request carries a CSRF token derived from the sign-in session with a
server key, so it stays valid when the access token is renewed."""

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
REFRESH_COOKIE = "hotline_refresh"
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


def token_claims(token: str) -> dict[str, Any] | None:
    """A token's claims, read without trusting them: the gateway verifies the token on each
    API call, the console only uses them for menus, the CSRF key and when to renew."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims


def csrf_for(request: Request, session_value: str) -> str:
    """Bound to the sign-in session (the token's ``sid``), not to one access token: a form
    rendered before the token was renewed still posts."""
    claims = token_claims(session_value) or {}
    bound = str(claims.get("sid") or session_value)
    mac = hmac.new(_key(request), bound.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def user_from(request: Request) -> User | None:
    """The session's user, as the access token's claims name them."""
    token = request.cookies.get(SESSION_COOKIE)
    claims = token_claims(token) if token else None
    if token is None or claims is None:
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


def start_session(request: Request, response: Response, answer: dict[str, Any]) -> None:
    """The token pair of a sign-in (``POST /auth/login``) as the session's cookies."""
    set_cookie(request, response, SESSION_COOKIE, answer["access_token"], answer["expires_in"])
    session_seconds: int = request.app.state.console.session_seconds
    set_cookie(request, response, REFRESH_COOKIE, answer["refresh_token"], session_seconds)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/")
