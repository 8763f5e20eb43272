"""Abuse limits (issue 9) with the ``limits`` library: failed sign-ins per user and per
client address, citizen lookups per client and per ticket, registrations per channel
account. Over a limit → 429 problem+json with ``Retry-After``.

Counters live in ``HOTLINE_RATE_LIMIT_STORAGE``: ``async+memory://`` (default) counts per
gateway process, so with N gateways a client may get up to N times a limit; point every
gateway at one shared store (``async+redis://host:6379``) to make a limit platform-wide."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from shared.errors import DomainError
from shared.settings import Settings


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    name: str
    item: RateLimitItem
    what: str  # for the message: "failed sign-ins for this user"


class Throttle:
    def __init__(self, settings: Settings) -> None:
        storage = storage_from_string(settings.rate_limit_storage)
        self.limiter = MovingWindowRateLimiter(storage)  # type: ignore[arg-type]
        self.login_user = Limit(
            "login-user", parse(settings.limit_failed_logins_per_user), "failed sign-ins"
        )
        self.login_client = Limit(
            "login-client",
            parse(settings.limit_failed_logins_per_client),
            "failed sign-ins from this address",
        )
        self.lookup_client = Limit(
            "lookup-client", parse(settings.limit_lookups_per_client), "lookups from this address"
        )
        self.lookup_ticket = Limit(
            "lookup-ticket", parse(settings.limit_lookups_per_ticket), "lookups of this ticket"
        )
        self.registration = Limit(
            "registration",
            parse(settings.limit_registrations_per_account),
            "registrations by this channel account",
        )

    async def check(self, limit: Limit, key: str) -> None:
        """Refuse when the limit is already used up (does not count)."""
        if not await self.limiter.test(limit.item, limit.name, key):
            await self._refuse(limit, key)

    async def hit(self, limit: Limit, key: str) -> None:
        """Count one; refuse when that goes over the limit."""
        if not await self.limiter.hit(limit.item, limit.name, key):
            await self._refuse(limit, key)

    async def count(self, limit: Limit, key: str) -> None:
        """Count one without refusing (a failure that is reported as such)."""
        await self.limiter.hit(limit.item, limit.name, key)

    async def clear(self, limit: Limit, key: str) -> None:
        await self.limiter.clear(limit.item, limit.name, key)

    async def _refuse(self, limit: Limit, key: str) -> None:
        stats = await self.limiter.get_window_stats(limit.item, limit.name, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"too many {limit.what}: at most {limit.item}; try again in {retry_after} s",
            retry_after,
        )
