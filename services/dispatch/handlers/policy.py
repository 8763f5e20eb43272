"""Dispatch's policy settings, versioned by effective date."""

from __future__ import annotations

from services.dispatch.domain import validate_settings
from services.dispatch.handlers.common import policy_versions_cached
from services.dispatch.models import policy_versions
from services.dispatch.schemas import PolicyPublic, PolicyVersion
from shared.auth import Caller, Role
from shared.errors import InvalidInput
from shared.policy import insert_version
from shared.service import ServiceContext


async def read_policy(ctx: ServiceContext, caller: Caller) -> PolicyPublic:
    caller.require(Role.ADMIN, Role.AGENCY, Role.OPERATOR)
    versions = await policy_versions_cached(ctx)
    in_force = versions.in_force(ctx.clock.now())
    return PolicyPublic(
        in_force=PolicyVersion(effective_from=in_force.effective_from, settings=in_force.settings),
        versions=[
            PolicyVersion(effective_from=v.effective_from, settings=v.settings) for v in versions
        ],
    )


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, body: PolicyVersion
) -> PolicyPublic:
    """A later revision of the rules is data: a new version from its effective date."""
    caller.require(Role.ADMIN)
    try:
        validate_settings(body.settings)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("settings", str(exc)) from exc
    async with ctx.db.unit_of_work() as uow:
        await insert_version(
            uow.conn,
            policy_versions,
            effective_from=body.effective_from,
            settings=body.settings,
            created_by=caller.sub,
            now=ctx.clock.now(),
        )
    await policy_versions_cached(ctx, refresh=True)
    return await read_policy(ctx, caller)
