"""Who is calling. The gateway authenticates users and passes their identity to services in
signed headers; a service refuses any request whose signature does not verify, so calling
a service directly, around the gateway, gets nowhere."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, MutableMapping
from enum import StrEnum
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from shared import entropy
from shared.asgi import read_body, replaying
from shared.errors import Forbidden, Unauthorized
from shared.events.base import Channel
from shared.keyed import KeyedDigest

CALLER_HEADER = "x-hotline-caller"
TIMESTAMP_HEADER = "x-hotline-timestamp"
SIGNATURE_HEADER = "x-hotline-caller-signature"
NONCE_HEADER = "x-hotline-nonce"
DIGEST_HEADER = "x-hotline-body-sha256"  # informative; the signature covers the digest
MAX_SKEW_SECONDS = 60
# the signed identity's headers as they go on the wire and as ASGI names them (lower case)
_CALLER, _TIMESTAMP, _SIGNATURE, _NONCE, _DIGEST = (
    name.encode()
    for name in (CALLER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, NONCE_HEADER, DIGEST_HEADER)
)


class Role(StrEnum):
    """RULES.md §1."""

    CITIZEN = "citizen"
    OPERATOR = "operator"
    AGENCY = "agency"
    UNIT = "unit"
    AUTHORITY = "authority"
    GOVSERVICE = "govservice"  # 市政务服务部门, the hotline's competent authority (Art 3)
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Caller(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str
    role: Role
    unit_id: str | None = None  # set for role ``unit``
    industry: str | None = None  # set for role ``authority``: the industry it decides for (Art 8)
    # role ``agency`` only: the district of a district work agency (Art 3); None for the
    # city agency, which sees the whole city
    district: str | None = None
    name: str = ""
    # True only on the gateway's own calls (the timeline); never set from a user's token, so
    # a route reserved for the gateway cannot be reached through the proxy.
    internal: bool = False
    # set for a channel account (API key): every ticket it files comes in on this channel
    channel: Channel | None = None

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"role {self.role.value} may not do this (needs one of: {allowed})")

    def require_internal(self) -> None:
        """Routes only the gateway itself calls; to anyone else they do not exist."""
        if not self.internal:
            from shared.errors import NotFound

            raise NotFound("no such resource")

    def require_industry(self, industry: str | None) -> None:
        """An industry authority acts only on its own industry's work (Art 8)."""
        if self.role is Role.AUTHORITY and (self.industry is None or self.industry != industry):
            raise Forbidden(
                f"the {self.industry or 'unbound'} authority may not act on "
                f"{industry or 'this'} industry's tickets",
                rule="Art 8: the city-level industry authority decides for its own industry",
            )

    @property
    def district_scope(self) -> str | None:
        """The one district this caller is confined to (a district work agency), or None."""
        return self.district if self.role is Role.AGENCY else None

    def require_district(self, district: str | None) -> None:
        """A district work agency acts on its own district's tickets only (Art 3)."""
        scope = self.district_scope
        if scope is not None and district != scope:
            raise Forbidden(
                f"the district work agency of {scope} may not act on "
                f"{'district ' + district if district else 'a ticket without a district'}",
                rule="Art 3: a district work agency runs the hotline inside its district",
            )

    def require_unit(self, unit_id: str | None) -> None:
        """A unit user acts only on its own unit's work (Art 28, 29)."""
        if self.role is Role.UNIT and self.unit_id != unit_id:
            raise Forbidden("this ticket belongs to another unit")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _signature(
    secret: str,
    *,
    timestamp: str,
    nonce: str,
    method: str,
    path: str,
    query: bytes,
    digest: str,
    caller: str,
) -> str:
    return _signed(
        secret,
        timestamp.encode(),
        nonce.encode(),
        method,
        path,
        query,
        digest.encode(),
        caller.encode(),
    )


def _signed(
    secret: str,
    timestamp: bytes,
    nonce: bytes,
    method: str,
    path: str,
    query: bytes,
    digest: bytes,
    caller: bytes,
) -> str:
    """The signature over a request's signed parts (hex HMAC-SHA256 of them, a line each)."""
    message = b"\n".join(
        (timestamp, nonce, method.upper().encode(), path.encode(), query, digest, caller)
    )
    return _keyed(secret).hexdigest(message)


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> KeyedDigest:
    """The signing secret's HMAC, its key schedule done once (a process has one secret)."""
    return KeyedDigest(secret.encode())


def sign_headers(
    secret: str,
    caller: Caller,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
) -> dict[str, str]:
    """Headers naming ``caller`` for one request: the signature covers the method, the
    decoded path, the query string as sent, a digest of the body, the time and a fresh
    nonce, so nothing of the request can be changed and it cannot be sent twice."""
    return {
        name.decode(): value.decode()
        for name, value in signed_headers(secret, caller, method, path, query=query, body=body)
    }


def signed_headers(
    secret: str,
    caller: Caller,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
) -> list[tuple[bytes, bytes]]:
    """``sign_headers``' headers as the gateway's proxy sends them, names and values
    encoded: made as bytes, not made as text and encoded a header at a time."""
    encoded = _identity(caller)
    timestamp = str(int(time.time())).encode()
    nonce = entropy.nonce().encode()  # as secrets.token_urlsafe(16), drawn 256 at a time
    digest = hashlib.sha256(body).hexdigest().encode()
    signature = _signed(secret, timestamp, nonce, method, path, query, digest, encoded)
    return [
        (_CALLER, encoded),
        (_TIMESTAMP, timestamp),
        (_NONCE, nonce),
        (_DIGEST, digest),
        (_SIGNATURE, signature.encode()),
    ]


@functools.lru_cache(maxsize=4096)
def _identity(caller: Caller) -> bytes:
    """The caller header's value, encoded once per caller (the gateway signs for the same
    callers all day; a ``Caller`` is frozen, so an equal one encodes the same)."""
    identity = caller.model_dump(mode="json")
    if identity["channel"] is None:  # only channel accounts carry one
        del identity["channel"]
    return base64.urlsafe_b64encode(orjson.dumps(identity))


class SignedAs(httpx.Auth):
    """httpx auth that signs each request as ``caller`` (the gateway's own calls, tests)."""

    requires_request_body = True

    def __init__(self, secret: str, caller: Caller) -> None:
        self.secret = secret
        self.caller = caller

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            sign_headers(
                self.secret,
                self.caller,
                request.method,
                request.url.path,
                query=request.url.query,
                body=request.content,
            )
        )
        yield request


class NonceCache:
    """Nonces seen within the signature window; a second use is a replay. In memory, per
    app: another instance of the same service does not see them, so state-changing requests
    are also recorded in the service's database (shared/replays.py)."""

    def __init__(self, window: float = MAX_SKEW_SECONDS, max_size: int = 200_000) -> None:
        self._window = window
        self._max = max_size
        self._seen: dict[str, float] = {}

    def first_use(self, nonce: str, now: float) -> bool:
        if nonce in self._seen:
            return False
        if len(self._seen) >= self._max:
            cutoff = now - 2 * self._window
            self._seen = {n: t for n, t in self._seen.items() if t > cutoff}
            if len(self._seen) >= self._max:
                return False  # flooded: refuse rather than forget
        self._seen[nonce] = now
        return True


_NONCES = NonceCache()


def verify_headers(
    secret: str,
    headers: dict[str, str] | Iterable[tuple[str, str]],
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
    nonces: NonceCache | None = None,
) -> Caller:
    h = {k.lower(): v for k, v in (headers.items() if isinstance(headers, dict) else headers)}
    return _verified(
        secret,
        h.get(CALLER_HEADER),
        h.get(TIMESTAMP_HEADER),
        h.get(SIGNATURE_HEADER),
        h.get(NONCE_HEADER),
        method,
        path,
        query,
        body,
        nonces,
    )


def _verified(
    secret: str,
    encoded: str | None,
    timestamp: str | None,
    signature: str | None,
    nonce: str | None,
    method: str,
    path: str,
    query: bytes,
    body: bytes,
    nonces: NonceCache | None,
) -> Caller:
    """``verify_headers`` of the signed identity's headers' values (None or empty: absent)."""
    if not (encoded and timestamp and signature and nonce):
        raise Unauthorized("missing caller identity: call the platform through the gateway")
    now = time.time()
    try:
        age = abs(now - int(timestamp))
    except ValueError as exc:
        raise Unauthorized("malformed caller timestamp") from exc
    if age > MAX_SKEW_SECONDS:
        raise Unauthorized("stale caller identity")
    expected = _signature(
        secret,
        timestamp=timestamp,
        nonce=nonce,
        method=method,
        path=path,
        query=query,
        digest=body_digest(body),
        caller=encoded,
    )
    if not hmac.compare_digest(expected, signature):
        raise Unauthorized("caller identity signature does not verify")
    if not (nonces or _NONCES).first_use(nonce, now):
        raise Unauthorized("this signed request was already used (replay)")
    return _caller(encoded)


@functools.lru_cache(maxsize=4096)
def _caller(encoded: str) -> Caller:
    """The caller named by a verified header, decoded once per identity (the gateway sends
    the same header for every request of a user; a ``Caller`` is frozen)."""
    return Caller.model_validate(orjson.loads(base64.urlsafe_b64decode(encoded)))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
CALLER_SCOPE_KEY = "hotline.caller"


class VerifyCaller:
    """ASGI middleware of every service: reads the body once, verifies the gateway's
    signature over the whole request and leaves the caller (or the refusal) in the scope for
    ``get_caller``; the app then reads the same body. Routes without a caller (health) are
    unaffected: the refusal is raised only where a caller is asked for."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], secret: str):
        self.app = app
        self.secret = secret
        self.nonces = NonceCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        # the headers by name at once (a C call; a repeated name's last value, as
        # ``verify_headers`` reads them), the signed identity's decoded (an absent one as
        # empty: refused as missing): not every header looked at and decoded in Python
        header = dict(scope["headers"]).get
        encoded, timestamp, signature, nonce = (
            header(_CALLER, b"").decode("latin-1"),
            header(_TIMESTAMP, b"").decode("latin-1"),
            header(_SIGNATURE, b"").decode("latin-1"),
            header(_NONCE, b"").decode("latin-1"),
        )
        try:
            verified: Caller | Unauthorized = _verified(
                self.secret,
                encoded,
                timestamp,
                signature,
                nonce,
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                body,
                self.nonces,
            )
        except Unauthorized as refusal:
            verified = refusal
        scope[CALLER_SCOPE_KEY] = verified
        await self.app(scope, replaying(body, receive), send)
