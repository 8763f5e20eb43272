"""Intake's policy settings, versioned by effective date: read by every registration, so
kept in memory and re-read from the database every few seconds (another instance may have
added a version)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.intake.domain import IntakePolicy
from services.intake.models import policy_versions
from services.intake.schemas import PolicyPublic, PolicyVersionCreate, PolicyVersionPublic
from shared.auth import Caller
from shared.policy import PolicyVersions, insert_version
from shared.service import ServiceContext

REFRESH_SECONDS = 5.0
POLICY_CACHE = "intake_policy"


@dataclass(frozen=True)
class StoredVersion:
    effective_from: datetime
    settings: dict[str, Any]
    created_by: str
    policy: IntakePolicy


@dataclass
class PolicyCache:
    versions: PolicyVersions[StoredVersion] | None = None
    loaded_at: float = float("-inf")
    # the requests that find the versions stale together wait for one re-read: under
    # load, every registration in flight found them stale at once and read them itself
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def stale(self) -> bool:
        return self.versions is None or time.monotonic() - self.loaded_at > REFRESH_SECONDS


def _cache(ctx: ServiceContext) -> PolicyCache:
    cache: PolicyCache | None = ctx.extras.get(POLICY_CACHE)
    if cache is None:
        cache = ctx.extras[POLICY_CACHE] = PolicyCache()
    return cache


async def load_policy(ctx: ServiceContext) -> None:
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(select(policy_versions))).all()
    cache = _cache(ctx)
    cache.versions = PolicyVersions(
        StoredVersion(
            r.effective_from,
            r.settings,
            r.created_by,
            IntakePolicy.from_settings(r.effective_from, r.settings),
        )
        for r in rows
    )
    cache.loaded_at = time.monotonic()


async def stored_versions(ctx: ServiceContext) -> PolicyVersions[StoredVersion]:
    cache = _cache(ctx)
    if cache.stale():
        async with cache.reading:
            if cache.stale():  # not re-read meanwhile by a request that waited before
                await load_policy(ctx)
    assert cache.versions is not None
    return cache.versions


async def current_policy(ctx: ServiceContext) -> IntakePolicy:
    versions = await stored_versions(ctx)
    return versions.in_force(ctx.clock.now()).policy


def _public(version: StoredVersion) -> PolicyVersionPublic:
    return PolicyVersionPublic.model_validate(
        {
            "effective_from": version.effective_from,
            "settings": version.settings,
            "created_by": version.created_by,
        }
    )


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    versions = await stored_versions(ctx)
    current = versions.in_force(ctx.clock.now())
    return PolicyPublic(in_force=_public(current), versions=[_public(v) for v in versions])


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyVersionCreate
) -> PolicyPublic:
    """A new version, in force from its effective date (never retroactive)."""
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await insert_version(
            uow.conn,
            policy_versions,
            effective_from=data.effective_from or now,
            settings=data.settings.model_dump(mode="json"),
            created_by=caller.sub,
            now=now,
        )
    await load_policy(ctx)
    return await read_policy(ctx)
