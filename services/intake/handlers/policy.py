"""Intake's policy settings, versioned by effective date: read by every registration, so
kept in memory and re-read from the database every few seconds (another instance may have
added a version)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.intake.domain import IntakePolicy, check_new_policy_version, policy_in_force
from services.intake.models import policy_versions
from services.intake.schemas import PolicyPublic, PolicyVersionCreate, PolicyVersionPublic
from shared.auth import Caller
from shared.errors import IllegalTransition
from shared.service import ServiceContext

REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class StoredVersion:
    effective_from: datetime
    settings: dict[str, Any]
    created_by: str
    policy: IntakePolicy


@dataclass
class PolicyCache:
    versions: list[StoredVersion] = field(default_factory=list)
    loaded_at: float = float("-inf")


def _cache(ctx: ServiceContext) -> PolicyCache:
    cache: PolicyCache = ctx.extras.setdefault("intake_policy", PolicyCache())
    return cache


async def load_policy(ctx: ServiceContext) -> None:
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(select(policy_versions))).all()
    cache = _cache(ctx)
    cache.versions = sorted(
        (
            StoredVersion(
                r.effective_from,
                r.settings,
                r.created_by,
                IntakePolicy.from_settings(r.effective_from, r.settings),
            )
            for r in rows
        ),
        key=lambda v: v.effective_from,
    )
    cache.loaded_at = time.monotonic()


async def stored_versions(ctx: ServiceContext) -> list[StoredVersion]:
    cache = _cache(ctx)
    if time.monotonic() - cache.loaded_at > REFRESH_SECONDS:
        await load_policy(ctx)
    return cache.versions


async def current_policy(ctx: ServiceContext) -> IntakePolicy:
    versions = await stored_versions(ctx)
    return policy_in_force([v.policy for v in versions], ctx.clock.now())


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
    in_force = policy_in_force([v.policy for v in versions], ctx.clock.now())
    current = next(v for v in versions if v.policy is in_force)
    return PolicyPublic(in_force=_public(current), versions=[_public(v) for v in versions])


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyVersionCreate
) -> PolicyVersionPublic:
    """A new version, in force from its effective date (never retroactive)."""
    now = ctx.clock.now()
    effective_from = data.effective_from or now
    check_new_policy_version(effective_from, now)
    try:
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(
                insert(policy_versions).values(
                    effective_from=effective_from,
                    settings=data.settings.model_dump(mode="json"),
                    created_by=caller.sub,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise IllegalTransition(
            f"a policy version effective from {effective_from.isoformat()} exists",
            rule="one policy version per effective date",
        ) from None
    await load_policy(ctx)
    return PolicyVersionPublic(
        effective_from=effective_from, settings=data.settings, created_by=caller.sub
    )
