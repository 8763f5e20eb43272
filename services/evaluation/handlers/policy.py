"""The evaluation policy settings: versions by effective date, read by anyone signed in,
added by an admin."""

from __future__ import annotations

from services.evaluation.handlers.common import forget_cached_policy, policy_versions_of
from services.evaluation.models import policy_versions
from services.evaluation.schemas import PolicyCreate, PolicyPublic, PolicyVersion
from shared.auth import Caller, Role
from shared.policy import insert_version
from shared.service import ServiceContext


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    async with ctx.db.engine.connect() as conn:
        versions = await policy_versions_of(conn)
    in_force = versions.in_force(ctx.clock.now())
    public = [
        PolicyVersion(effective_from=v.effective_from, settings=v.settings, created_by=v.created_by)
        for v in versions
    ]
    return PolicyPublic(in_force=public[list(versions).index(in_force)], versions=public)


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyCreate
) -> PolicyPublic:
    caller.require(Role.ADMIN)
    async with ctx.db.unit_of_work() as uow:
        await insert_version(
            uow.conn,
            policy_versions,
            effective_from=data.effective_from,
            settings=data.settings.model_dump(mode="json"),
            created_by=caller.sub,
            now=ctx.clock.now(),
        )
    forget_cached_policy(ctx)
    return await read_policy(ctx)
