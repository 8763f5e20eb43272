"""Policy settings: versions by effective date, read by everyone, added by admin."""

from __future__ import annotations

from services.knowledge.domain import Policy
from services.knowledge.handlers.common import load_policies
from services.knowledge.models import policy_versions
from services.knowledge.schemas import PolicyPublic, PolicyVersion, PolicyVersionCreate
from shared.auth import Caller, Role
from shared.policy import insert_version
from shared.service import ServiceContext


def _public(p: Policy) -> PolicyVersion:
    return PolicyVersion(
        effective_from=p.effective_from, settings=p.settings, created_by=p.created_by
    )


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    async with ctx.db.engine.connect() as conn:
        versions = await load_policies(conn)
    in_force = versions.in_force(ctx.clock.now())
    return PolicyPublic(in_force=_public(in_force), versions=[_public(v) for v in versions])


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyVersionCreate
) -> PolicyPublic:
    """A new version takes effect at its date; the past is never rewritten."""
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
    return await read_policy(ctx)
