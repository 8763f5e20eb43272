"""Policy settings and the working-day calendar, as the admin changes them."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import delete, insert, select, update

from services.sla.domain import (
    ClockKind,
    Policy,
    extended_deadline,
    next_due,
    policy_settings_errors,
    warning_at,
)
from services.sla.handlers.clocks import PRODUCER, RUNNING
from services.sla.handlers.state import reload_state, state
from services.sla.models import calendar_days, calendar_years, clocks, extensions, policy_versions
from services.sla.schemas import (
    CalendarChange,
    CalendarDayIn,
    CalendarDayPublic,
    CalendarNotice,
    CalendarNoticePreview,
    CalendarStatus,
    CalendarYear,
    NoticeDay,
    PolicyChange,
    PolicyPublic,
    PolicyVersion,
)
from shared.auth import Caller, Role
from shared.calendar import Period
from shared.db import insert_ignoring_duplicates
from shared.errors import InvalidInput
from shared.events import DeadlineSet
from shared.holiday_notice import NoticeError, parse_notice
from shared.policy import PolicyVersions, check_new_version, insert_version
from shared.service import ServiceContext

# ---- policy ---------------------------------------------------------------------------


async def read_policy(ctx: ServiceContext) -> PolicyPublic:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(policy_versions).order_by(policy_versions.c.effective_from))
        ).all()
    versions = [PolicyVersion.model_validate(dict(r._mapping)) for r in rows]
    in_force = PolicyVersions(Policy(v.effective_from, v.settings) for v in versions).in_force(
        ctx.clock.now()
    )
    return PolicyPublic(
        in_force=next(v for v in versions if v.effective_from == in_force.effective_from),
        versions=versions,
    )


async def change_policy(ctx: ServiceContext, caller: Caller, change: PolicyChange) -> PolicyPublic:
    """A new version of the settings; it applies to clocks started from its date on."""
    caller.require(Role.ADMIN)
    check_new_version(change.effective_from, ctx.clock.now())  # running clocks keep theirs
    errors = policy_settings_errors(change.settings)
    if errors:
        field, reason = errors[0]
        raise InvalidInput(field, reason, errors=[{"field": f, "reason": r} for f, r in errors])
    async with ctx.db.unit_of_work() as uow:
        await insert_version(
            uow.conn,
            policy_versions,
            effective_from=change.effective_from,
            settings=change.settings,
            created_by=caller.sub,
            now=ctx.clock.now(),
        )
    await reload_state(ctx, force=True)
    return await read_policy(ctx)


# ---- calendar -------------------------------------------------------------------------


def _year_days(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days)]


async def read_calendar(ctx: ServiceContext, year: int) -> CalendarYear:
    if not 2000 <= year <= 2100:
        raise InvalidInput("year", "must lie between 2000 and 2100")
    async with ctx.db.engine.connect() as conn:
        overrides = {
            r.day: r
            for r in (
                await conn.execute(
                    select(calendar_days).where(
                        calendar_days.c.day >= date(year, 1, 1),
                        calendar_days.c.day < date(year + 1, 1, 1),
                    )
                )
            ).all()
        }
        entered = bool(
            await conn.scalar(select(calendar_years.c.year).where(calendar_years.c.year == year))
        )
    calendar = state(ctx).calendar
    days = []
    official_year = calendar.is_official(date(year, 6, 30)) and not entered
    for day in _year_days(year):
        if day in overrides:
            source, note = "override", overrides[day].note
        elif calendar.is_official(day):
            source, note = ("entered" if entered else "official"), None
        else:
            source, note = "provisional", None
        days.append(
            CalendarDayPublic(
                date=day, working=calendar.is_working_day(day), source=source, note=note
            )
        )
    return CalendarYear(
        year=year,
        official=official_year,
        entered=entered,
        provisional=not calendar.missing_years([year]) == [],
        days=days,
    )


async def change_calendar(
    ctx: ServiceContext, caller: Caller, year: int, change: CalendarChange
) -> CalendarYear:
    caller.require(Role.ADMIN)
    for n, day in enumerate(change.days):
        if day.date.year != year:
            raise InvalidInput(f"days.{n}.date", f"{day.date} is not in {year}")
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        if change.days:
            await uow.conn.execute(
                delete(calendar_days).where(calendar_days.c.day.in_([d.date for d in change.days]))
            )
            await uow.conn.execute(
                insert(calendar_days),
                [
                    {
                        "day": d.date,
                        "working": d.working,
                        "note": d.note,
                        "set_by": caller.sub,
                        "set_at": now,
                    }
                    for d in change.days
                ],
            )
        if change.complete:
            await uow.conn.execute(
                insert_ignoring_duplicates(uow.conn, calendar_years).values(
                    year=year, entered_by=caller.sub, entered_at=now
                )
            )
    await reload_state(ctx, force=True)
    recomputed = await recompute_deadlines(ctx)
    result = await read_calendar(ctx, year)
    result.recomputed_clocks = recomputed
    return result


async def import_notice(
    ctx: ServiceContext, caller: Caller, year: int, data: CalendarNotice
) -> CalendarNoticePreview:
    """The year from the State Council's notice: every 放假/补休/上班 sentence read into
    day overrides; shown as a grid, and on ``confirm`` entered (the year's deadlines stop
    being provisional and are recomputed)."""
    caller.require(Role.ADMIN)
    try:
        notice = parse_notice(data.text, year)
    except NoticeError as exc:
        raise InvalidInput("text", str(exc), position=exc.position) from None
    overrides = notice.overrides()
    months: dict[int, list[NoticeDay]] = {}
    for day, working in notice.grid().items():
        months.setdefault(day.month, []).append(
            NoticeDay(
                date=day,
                working=working,
                holiday=notice.days_off.get(day) or notice.working_days.get(day),
                changed=working != (day.weekday() < 5),
            )
        )
    preview = CalendarNoticePreview(
        year=year,
        holidays=notice.holidays,
        days_off=sum(1 for d in notice.days_off if d.year == year),
        adjusted_working_days=sorted(d for d in notice.working_days if d.year == year),
        months=months,
        outside_year=sorted(d for d in overrides if d.year != year),
    )
    if data.confirm:
        change = CalendarChange(
            days=[
                CalendarDayIn(
                    date=d,
                    working=w,
                    note=(notice.working_days.get(d) or notice.days_off.get(d) or "")[:100],
                )
                for d, w in sorted(overrides.items())
                if d.year == year
            ],
            complete=True,
        )
        preview.entered = await change_calendar(ctx, caller, year, change)
    return preview


async def recompute_deadlines(ctx: ServiceContext) -> int:
    """Running clocks computed on a provisional calendar get their deadline again from the
    calendar as it now stands (start + period, then each approved extension)."""
    sla = state(ctx)
    now = ctx.clock.now()
    count = 0
    async with ctx.db.unit_of_work() as uow:
        rows = (
            await uow.conn.execute(select(clocks).where(clocks.c.provisional.is_(True), *RUNNING))
        ).all()
        for row in rows:
            deadline = sla.calendar.add(row.started_at, Period.parse(row.period))
            at, provisional = deadline.at, deadline.provisional
            approved = (
                (
                    await uow.conn.execute(
                        select(extensions.c.period)
                        .where(extensions.c.clock_id == row.id, extensions.c.state == "approved")
                        .order_by(extensions.c.decided_at)
                    )
                )
                .scalars()
                .all()
            )
            policy = sla.versions.in_force(row.started_at)
            cap = Period.parse(policy.settings["extension_cap"])
            for period in approved:
                at, more = extended_deadline(sla.calendar, at, Period.parse(period), cap)
                provisional = provisional or more
            if at == row.deadline and provisional == row.provisional:
                continue
            warn = warning_at(row.started_at, at, policy.settings["warning_fraction"])
            await uow.conn.execute(
                update(clocks)
                .where(clocks.c.id == row.id)
                .values(
                    deadline=at,
                    provisional=provisional,
                    warn_at=warn,
                    next_due_at=next_due(
                        deadline=at,
                        warn_at=warn,
                        warned=row.warned_at is not None,
                        overdue=row.overdue_at is not None,
                        escalate_at=row.escalate_at,
                        level=row.escalation_level,
                        stopped=False,
                    ),
                )
            )
            uow.emit(
                DeadlineSet(
                    ticket_id=row.ticket_id,
                    clock=ClockKind(row.kind).value,
                    round=row.round,
                    dispatch_no=row.dispatch_no,
                    unit_id=row.unit_id,
                    started_at=row.started_at,
                    deadline=at,
                    period=row.period,
                    provisional=provisional,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
            count += 1
        uow.after_commit.append(sla.wake.set)
    return count


async def calendar_status(ctx: ServiceContext) -> CalendarStatus:
    year = ctx.clock.now().year
    async with ctx.db.engine.connect() as conn:
        entered = (await conn.execute(select(calendar_years.c.year))).scalars().all()
        overrides = len((await conn.execute(select(calendar_days.c.day))).all())
    return CalendarStatus(
        missing_years=state(ctx).calendar.missing_years([year, year + 1]),
        entered_years=sorted(entered),
        overrides=overrides,
    )
