"""Who is calling. The gateway authenticates users and passes their identity to services in
signed headers; a service refuses any request whose signature does not verify, so calling
a service directly, around the gateway, gets nowhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from enum import StrEnum

import orjson
from pydantic import BaseModel, ConfigDict

from shared.errors import Forbidden, Unauthorized
from shared.events.base import Channel

CALLER_HEADER = "x-hotline-caller"
TIMESTAMP_HEADER = "x-hotline-timestamp"
SIGNATURE_HEADER = "x-hotline-signature"
MAX_SKEW_SECONDS = 300


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


def _signature(secret: str, timestamp: str, method: str, path: str, caller: str) -> str:
    message = "\n".join((timestamp, method.upper(), path, caller)).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_headers(secret: str, caller: Caller, method: str, path: str) -> dict[str, str]:
    identity = caller.model_dump(mode="json")
    if identity["channel"] is None:  # only channel accounts carry one
        del identity["channel"]
    encoded = base64.urlsafe_b64encode(orjson.dumps(identity)).decode()
    timestamp = str(int(time.time()))
    return {
        CALLER_HEADER: encoded,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: _signature(secret, timestamp, method, path, encoded),
    }


def verify_headers(
    secret: str, headers: dict[str, str] | Iterable[tuple[str, str]], method: str, path: str
) -> Caller:
    h = {k.lower(): v for k, v in (headers.items() if isinstance(headers, dict) else headers)}
    encoded, timestamp, signature = (
        h.get(CALLER_HEADER),
        h.get(TIMESTAMP_HEADER),
        h.get(SIGNATURE_HEADER),
    )
    if not (encoded and timestamp and signature):
        raise Unauthorized("missing caller identity: call the platform through the gateway")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError as exc:
        raise Unauthorized("malformed caller timestamp") from exc
    if age > MAX_SKEW_SECONDS:
        raise Unauthorized("stale caller identity")
    expected = _signature(secret, timestamp, method, path, encoded)
    if not hmac.compare_digest(expected, signature):
        raise Unauthorized("caller identity signature does not verify")
    return Caller.model_validate(orjson.loads(base64.urlsafe_b64decode(encoded)))
