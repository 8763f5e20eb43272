"""Policy settings: versions by effective date, read by everyone, added by admin."""

from __future__ import annotations

from sqlalchemy import insert, select

from services.knowledge.domain import Policy, policy_in_force
from services.knowledge.handlers.common import load_policies
from services.knowledge.models import policy_versions
from services.knowledge.schemas import PolicyPublic, PolicyVersion, PolicyVersionCreate
from shared.auth import Caller, Role
from shared.errors import IllegalTransition
from shared.service import ServiceContext


def _public(p: Policy) -> PolicyVersion:
    return PolicyVersion(
        effective_from=p.effective_from, settings=p.settings, created_by=p.created_by
    )


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    async with ctx.db.engine.connect() as conn:
        versions = sorted(await load_policies(conn), key=lambda v: v.effective_from)
    in_force = policy_in_force(versions, ctx.clock.now())
    return PolicyPublic(in_force=_public(in_force), versions=[_public(v) for v in versions])


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyVersionCreate
) -> PolicyPublic:
    """A new version takes effect at its date; the past is never rewritten."""
    caller.require(Role.ADMIN)
    now = ctx.clock.now()
    if data.effective_from < now:
        raise IllegalTransition("a policy version cannot take effect in the past")
    async with ctx.db.unit_of_work() as uow:
        taken = await uow.conn.scalar(
            select(policy_versions.c.id).where(
                policy_versions.c.effective_from == data.effective_from
            )
        )
        if taken is not None:
            raise IllegalTransition("a version with this effective date exists already")
        await uow.conn.execute(
            insert(policy_versions).values(
                effective_from=data.effective_from,
                settings=data.settings.model_dump(mode="json"),
                created_by=caller.sub,
                created_at=now,
            )
        )
    return await read_policy(ctx)
