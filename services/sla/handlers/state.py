"""What the SLA service keeps in memory: the working-day calendar (official data plus the
admin's overrides), the policy versions, and the event that wakes the scanner."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select

from services.sla.domain import DEFAULT_POLICY, DEFAULT_POLICY_EFFECTIVE_FROM, Policy
from services.sla.models import calendar_days, calendar_years, policy_versions
from shared.calendar import WorkingCalendar
from shared.policy import PolicyVersions
from shared.service import ServiceContext


class ElapsedPlan(NamedTuple):
    """The timing of clocks of one kind, urgency and statutory period whose period is
    elapsed time (minutes, hours), worked out once under one policy (``clocks.clock_timing``)
    for the starts it holds for: those from ``since`` until ``until`` (UTC; None: no end),
    where that policy is the one in force among ``versions`` and Shanghai keeps one offset."""

    versions: PolicyVersions[Policy]
    since: datetime
    until: datetime | None
    period: str
    delta: timedelta
    warn_delta: timedelta


class SlaState:
    def __init__(self) -> None:
        self.calendar = WorkingCalendar()
        self.versions: PolicyVersions[Policy] = PolicyVersions(
            [], default=Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
        )
        self.wake = asyncio.Event()
        # when the scanner next looks by itself (None: it is awake or has nothing planned)
        self.planned_wake: datetime | None = None
        self.fingerprint: tuple[object, ...] = ()
        # the timing of clocks whose period is elapsed time, by kind, urgency and statutory
        # period (``clocks._elapsed_timing``)
        self.elapsed: dict[tuple[str, str, str | None], ElapsedPlan] = {}

    def wake_for(self, due: datetime | None) -> bool:
        """Whether a clock due at ``due`` needs the scanner woken: only when it falls before
        the scanner's planned look (a ticket's clocks are days away; waking per new clock
        cost two queries each)."""
        return due is not None and (self.planned_wake is None or due < self.planned_wake)


def state(ctx: ServiceContext) -> SlaState:
    sla: SlaState = ctx.extras["sla"]
    return sla


async def _fingerprint(ctx: ServiceContext) -> tuple[object, ...]:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    select(func.count()).select_from(calendar_days).scalar_subquery(),
                    select(func.max(calendar_days.c.set_at)).scalar_subquery(),
                    select(func.count()).select_from(calendar_years).scalar_subquery(),
                    select(func.count()).select_from(policy_versions).scalar_subquery(),
                )
            )
        ).one()
    return tuple(row)


async def reload_state(ctx: ServiceContext, *, force: bool = False) -> bool:
    """Re-read the calendar and the policy when another instance (or an admin call) has
    changed them. Returns True when something changed."""
    sla: SlaState = ctx.extras.setdefault("sla", SlaState())
    fingerprint = await _fingerprint(ctx)
    if not force and fingerprint == sla.fingerprint:
        return False
    async with ctx.db.engine.connect() as conn:
        versions = (await conn.execute(select(policy_versions))).all()
        days = (await conn.execute(select(calendar_days.c.day, calendar_days.c.working))).all()
        years = (await conn.execute(select(calendar_years.c.year))).scalars().all()
    sla.versions = PolicyVersions(
        (Policy(v.effective_from, v.settings) for v in versions),
        default=Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY),
    )
    sla.calendar = WorkingCalendar({d.day: d.working for d in days}, entered_years=years)
    sla.fingerprint = fingerprint
    return True


async def load_state(ctx: ServiceContext) -> None:
    await reload_state(ctx, force=True)
