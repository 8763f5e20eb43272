"""Channel accounts at the front door: an outside system sends its API key
(``X-Api-Key: <key>`` or ``Authorization: ApiKey <key>``) instead of a user's token; the
channels service says whose it is, and the gateway remembers the answer briefly. Also the
public pass-through for callers that carry no platform credentials at all: WeChat's
servers (``/wechat/...``, signed by WeChat) and Open311 clients (``/open311/v2/...``, with
the spec's ``api_key``) — the channels service checks them itself."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import httpx
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from shared.access import public
from shared.auth import Caller, Role, SignedAs
from shared.errors import DomainError, Unauthorized

if TYPE_CHECKING:  # the proxy imports this module
    from gateway.proxy import Upstreams

SERVICE = "channels"
VERIFY_PATH = "/internal/api-keys/verify"
GATEWAY_CALLER = Caller(sub="gateway", role=Role.ADMIN, name="gateway", internal=True)
_SCHEME = "apikey"
_PUBLIC_HEADERS = frozenset({b"content-type", b"accept"})
MAX_PUBLIC_BODY = 64 * 1024


def _unavailable(what: str) -> DomainError:
    from gateway.proxy import ServiceUnavailable

    return ServiceUnavailable(what, service=SERVICE)


# A request's API key (a channel account's): the first ``X-Api-Key`` header, or the first
# ``Authorization: ApiKey <key>`` with a key, whichever comes first (the proxy reads it in its
# own pass over the headers: gateway/proxy.py ``forward``).


def api_key_of_header(value: bytes) -> str | None:
    """The key an ``X-Api-Key`` header gives (None for a blank one)."""
    return value.decode("latin-1").strip() or None


def api_key_of_authorization(authorization: str) -> str | None:
    """The key of ``Authorization: ApiKey <key>``; None for another scheme or no key."""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() == _SCHEME and key.strip():
        return key.strip()
    return None


class ApiKeys:
    """Verified keys, remembered for ``ttl`` seconds by their hash (a revoked key stops
    working within that time)."""

    def __init__(self, ttl: float, *, max_remembered: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_remembered
        self._known: dict[str, tuple[Caller, float]] = {}

    async def caller(self, upstreams: Upstreams, key: str) -> Caller:
        digest = hashlib.sha256(key.encode()).hexdigest()
        known = self._known.get(digest)
        if known is not None and time.monotonic() < known[1]:
            return known[0]
        upstream = upstreams.get(SERVICE)
        auth = SignedAs(upstreams.secret, GATEWAY_CALLER)
        try:
            answer = await upstream.client.post(VERIFY_PATH, json={"api_key": key}, auth=auth)
        except httpx.HTTPError as exc:
            raise _unavailable("cannot verify the API key now") from exc
        if answer.status_code in (401, 422):
            self._known.pop(digest, None)
            raise Unauthorized("unknown or revoked API key")
        if answer.status_code != 200:
            raise _unavailable("cannot verify the API key now")
        who = answer.json()
        caller = Caller(
            sub=f"account:{who['account_id']}",
            role=Role(who["role"]),
            unit_id=who.get("unit_id"),
            name=who.get("name") or "",
            channel=who.get("channel"),
        )
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[digest] = (caller, time.monotonic() + self.ttl)
        return caller


router = APIRouter(include_in_schema=False)


@router.api_route("/wechat/{account_id}", methods=["GET", "POST"])
@public()  # signed by WeChat, checked by channels
async def wechat(account_id: str, request: Request) -> Response:
    """WeChat's servers → the channels service, untouched (it verifies WeChat's signature)."""
    return await _pass_through(request, f"/wechat/{account_id}")


@router.api_route("/open311/v2/{path:path}", methods=["GET", "POST"])
@public()  # an Open311 api_key, checked by channels
async def open311(path: str, request: Request) -> Response:
    """Open311 GeoReport v2: public reads; a POST carries the spec's ``api_key``, which the
    channels service checks."""
    return await _pass_through(request, f"/open311/v2/{path}")


async def _pass_through(request: Request, target: str) -> Response:
    upstream = request.app.state.upstreams.get(SERVICE)
    body = await request.body()
    if len(body) > MAX_PUBLIC_BODY:
        return Response(b"", status_code=413)
    headers = [(k, v) for k, v in request.scope["headers"] if k in _PUBLIC_HEADERS]
    headers.append((b"x-request-id", request.state.trace_id.encode()))
    try:
        answer = await upstream.client.request(
            request.method,
            target,
            params=request.query_params,
            content=body,
            headers=headers,
        )
    except httpx.HTTPError as exc:
        raise _unavailable("the channels service is unavailable") from exc
    kept = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
    return Response(answer.content, status_code=answer.status_code, headers=kept)


def install_channels(app: FastAPI, ttl: float) -> None:
    app.state.api_keys = ApiKeys(ttl)
    app.include_router(router)
