"""The evaluation policy settings: versions by effective date, read by anyone signed in,
added by an admin."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.evaluation.domain import check_new_policy_version, policy_in_force
from services.evaluation.handlers.common import policy_versions_of
from services.evaluation.models import policy_versions
from services.evaluation.schemas import PolicyCreate, PolicyPublic, PolicyVersion
from shared.auth import Caller, Role
from shared.errors import IllegalTransition
from shared.service import ServiceContext


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    async with ctx.db.engine.connect() as conn:
        versions = sorted(await policy_versions_of(conn), key=lambda v: v.effective_from)
    in_force = policy_in_force(versions, ctx.clock.now())
    public = [
        PolicyVersion(effective_from=v.effective_from, settings=v.settings, created_by=v.created_by)
        for v in versions
    ]
    return PolicyPublic(in_force=public[versions.index(in_force)], versions=public)


async def add_policy_version(
    ctx: ServiceContext, caller: Caller, data: PolicyCreate
) -> PolicyPublic:
    caller.require(Role.ADMIN)
    now = ctx.clock.now()
    check_new_policy_version(data.effective_from, now)
    try:
        async with ctx.db.unit_of_work() as uow:
            taken = await uow.conn.scalar(
                select(policy_versions.c.id).where(
                    policy_versions.c.effective_from == data.effective_from
                )
            )
            if taken is not None:
                raise IllegalTransition("a policy version with this effective date exists")
            await uow.conn.execute(
                insert(policy_versions).values(
                    effective_from=data.effective_from,
                    settings=data.settings.model_dump(mode="json"),
                    created_by=caller.sub,
                    created_at=now,
                )
            )
    except IntegrityError as exc:
        raise IllegalTransition("a policy version with this effective date exists") from exc
    return await read_policy(ctx)
