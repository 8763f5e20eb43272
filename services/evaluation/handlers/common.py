"""What every part of the evaluation service shares: its settings and calendar, the
policy in force, reporting periods, and scoping of unit users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import Policy, PolicySettings, ReportingPeriod
from services.evaluation.models import policy_versions, tickets, units
from services.evaluation.settings import EvaluationSettings
from shared.auth import Caller, Role
from shared.calendar import SHANGHAI, Period, WorkingCalendar
from shared.errors import Forbidden, InvalidInput
from shared.policy import PolicyVersions
from shared.service import ServiceContext

PRODUCER = "evaluation"


@dataclass
class EvaluationState:
    settings: EvaluationSettings
    calendar: WorkingCalendar


def state(ctx: ServiceContext) -> EvaluationState:
    found: EvaluationState = ctx.extras["evaluation"]
    return found


async def prepare(ctx: ServiceContext) -> None:
    """Start hook: settings, the working-day calendar, the evidence folder."""
    settings = EvaluationSettings()
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    ctx.extras["evaluation"] = EvaluationState(settings, WorkingCalendar())


def new_id() -> str:
    return str(uuid.uuid4())


# ---- policy ---------------------------------------------------------------------------------


async def policy_versions_of(conn: AsyncConnection) -> PolicyVersions[Policy]:
    rows = (await conn.execute(select(policy_versions))).all()
    return PolicyVersions(
        Policy(r.effective_from, PolicySettings.model_validate(r.settings), r.created_by)
        for r in rows
    )


async def policy_at(conn: AsyncConnection, at: datetime) -> PolicySettings:
    return (await policy_versions_of(conn)).in_force(at).settings


POLICY_REFRESH_SECONDS = 5.0


async def cached_policy_at(
    ctx: ServiceContext, conn: AsyncConnection, at: datetime
) -> PolicySettings:
    """``policy_at`` for the per-event path (``cached_policies``)."""
    return (await cached_policies(ctx, conn)).in_force(at).settings


async def cached_policies(ctx: ServiceContext, conn: AsyncConnection) -> PolicyVersions[Policy]:
    """``policy_versions_of`` for the per-event path: the versions are kept in memory and
    re-read every few seconds (another instance may add one; a new version is never in
    force before it is added, so a few seconds' delay matters only to one effective that
    soon)."""
    cached: tuple[float, PolicyVersions[Policy]] | None = ctx.extras.get("evaluation_policy")
    if cached is None or monotonic() - cached[0] > POLICY_REFRESH_SECONDS:
        cached = (monotonic(), await policy_versions_of(conn))
        ctx.extras["evaluation_policy"] = cached
    return cached[1]


def forget_cached_policy(ctx: ServiceContext) -> None:
    ctx.extras.pop("evaluation_policy", None)


def due_after(ctx: ServiceContext, start: datetime, period: str) -> datetime:
    return state(ctx).calendar.add(start, Period.parse(period)).at


# ---- periods and scoping ----------------------------------------------------------------------


# The days a report may cover: their Shanghai midnights must still be times in UTC (a day
# at either end of the calendar, e.g. 0001-01-01, is not: the query failed with a 500).
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def reporting_period(
    start: date | None,
    end: date | None,
    now: datetime,
    names: tuple[str, str] = ("from", "to"),
) -> tuple[ReportingPeriod, date, date]:
    """Whole local (Shanghai) days, both ends included; by default the current month.
    ``names``: the request's fields for the two days, as a refusal names them."""
    today = now.astimezone(SHANGHAI).date()
    first = start or today.replace(day=1)
    last = end or today
    for name, day in zip(names, (first, last), strict=True):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise InvalidInput(name, f"must be a day from {EARLIEST_DAY} to {LATEST_DAY}")
    if last < first:
        raise InvalidInput(names[1], f"must not be before {names[0]}")
    begin = datetime.combine(first, time(0), tzinfo=SHANGHAI)
    finish = datetime.combine(last + timedelta(days=1), time(0), tzinfo=SHANGHAI)
    return ReportingPeriod(begin, finish), first, last


def scoped_unit(caller: Caller, unit_id: str | None) -> str | None:
    """The unit a query is limited to: a unit user always its own (Art 28, 29)."""
    if caller.role is Role.UNIT:
        if unit_id is not None and unit_id != caller.unit_id:
            raise Forbidden("a unit sees only its own unit's data")
        return caller.unit_id
    return unit_id


def of_district(caller: Caller, ticket_column: Any) -> Any | None:
    """A district work agency's filter on a ticket column (Art 3); None for everyone else."""
    if caller.district_scope is None:
        return None
    return ticket_column.in_(
        select(tickets.c.ticket_id).where(tickets.c.district == caller.district_scope)
    )


async def require_ticket_district(conn: AsyncConnection, caller: Caller, ticket_id: str) -> None:
    """A district work agency acts on its own district's tickets only (Art 3)."""
    if caller.district_scope is not None:
        caller.require_district(
            await conn.scalar(select(tickets.c.district).where(tickets.c.ticket_id == ticket_id))
        )


async def unit_names(conn: AsyncConnection) -> dict[str, str]:
    return {r.unit_id: r.name for r in (await conn.execute(select(units))).all()}


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
