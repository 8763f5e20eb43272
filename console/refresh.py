"""Keeping an active user signed in: before a request is handled, an access token that has
expired or will within ``RENEW_AHEAD`` seconds is exchanged, through the gateway's
``POST /auth/refresh``, for a new pair (the refresh token rotates: each is used once). The
request then goes on with the new token and the browser receives both new cookies. A refused
refresh (session ended, revoked, user disabled) ends the console session.

A page and its htmx requests often arrive together with the same old cookies: they share one
exchange (and, for ``GRACE`` seconds, its answer), since presenting a used refresh token
again would make the gateway revoke the whole session as copied."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.client import Api
from console.session import REFRESH_COOKIE, SESSION_COOKIE, token_claims

RENEW_AHEAD = 300.0
GRACE = 10.0


@dataclass(frozen=True)
class Renewed:
    access_token: str
    refresh_token: str
    expires_in: int


class SessionRefresh:
    """ASGI middleware of the console app (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        api: Callable[[], Api],
        session_seconds: Callable[[], int],
        secure: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self._api = api
        self._session_seconds = session_seconds
        self._secure = secure
        self._clock = clock
        self._pending: dict[str, asyncio.Future[Renewed | None]] = {}
        self._recent: dict[str, tuple[float, Renewed | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = HTTPConnection(scope).cookies
        refresh = cookies.get(REFRESH_COOKIE)
        if not refresh or not self._due(cookies.get(SESSION_COOKIE)):
            await self.app(scope, receive, send)
            return
        try:
            renewed = await self.renew(refresh)
        except RenewFailed:  # the gateway could not answer: the request goes on as it is
            await self.app(scope, receive, send)
            return
        if renewed is None:
            cookies = {
                k: v for k, v in cookies.items() if k not in (SESSION_COOKIE, REFRESH_COOKIE)
            }
        else:
            cookies = {
                **cookies,
                SESSION_COOKIE: renewed.access_token,
                REFRESH_COOKIE: renewed.refresh_token,
            }
        scope = {**scope, "headers": _with_cookies(scope["headers"], cookies)}
        await self.app(scope, receive, self._setting_cookies(send, renewed, scope))

    def _due(self, access_token: str | None) -> bool:
        claims = token_claims(access_token) if access_token else None
        if claims is None:
            return True
        try:
            expires = float(claims.get("exp", 0))
        except (TypeError, ValueError):
            return True
        return expires - self._clock() < RENEW_AHEAD

    async def renew(self, refresh_token: str) -> Renewed | None:
        """The new pair for ``refresh_token`` (``None``: the session has ended), asked of
        the gateway once however many requests carry it at the same moment."""
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        now = time.monotonic()
        for old in [k for k, (until, _) in self._recent.items() if until < now]:
            del self._recent[old]
        if key in self._recent:
            return self._recent[key][1]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._exchange(refresh_token))
            self._pending[key] = pending
            try:
                renewed = await pending
            finally:
                del self._pending[key]
            self._recent[key] = (time.monotonic() + GRACE, renewed)
            return renewed
        return await asyncio.shield(pending)

    async def _exchange(self, refresh_token: str) -> Renewed | None:
        answer = await self._api().raw(
            "POST", "/api/v1/auth/refresh", None, json={"refresh_token": refresh_token}
        )
        if answer.status_code in (401, 422):
            return None
        if answer.status_code != 200:
            raise RenewFailed(answer.status_code)
        body: dict[str, Any] = answer.json()
        return Renewed(body["access_token"], body["refresh_token"], int(body["expires_in"]))

    def _setting_cookies(
        self, send: Send, renewed: Renewed | None, scope: Scope
    ) -> Callable[[Message], Awaitable[None]]:
        cookie = Response()
        secure = scope.get("scheme") == "https" or self._secure()
        if renewed is None:
            for name in (SESSION_COOKIE, REFRESH_COOKIE):
                cookie.delete_cookie(name, path="/")
        else:
            for name, value, max_age in (
                (SESSION_COOKIE, renewed.access_token, renewed.expires_in),
                (REFRESH_COOKIE, renewed.refresh_token, self._session_seconds()),
            ):
                cookie.set_cookie(
                    name,
                    value,
                    max_age=max_age,
                    httponly=True,
                    samesite="strict",
                    secure=secure,
                    path="/",
                )
        extra = [(k, v) for k, v in cookie.raw_headers if k == b"set-cookie"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own = {v.split(b"=", 1)[0] for k, v in headers if k == b"set-cookie"}
                # the page's own answer about the session (a sign-out, a sign-in) wins
                headers += [(k, v) for k, v in extra if v.split(b"=", 1)[0] not in own]
                message = {**message, "headers": headers}
            await send(message)

        return sending


class RenewFailed(Exception):
    """The gateway answered the refresh with neither a new pair nor a refusal."""


def _with_cookies(headers: list[tuple[bytes, bytes]], cookies: dict[str, str]) -> list[Any]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in cookies.items():
        jar[name] = value
    line = "; ".join(f"{m.key}={m.coded_value}" for m in jar.values())
    return [(k, v) for k, v in headers if k != b"cookie"] + [(b"cookie", line.encode("latin-1"))]
