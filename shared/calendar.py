"""Working-day calendar and deadline arithmetic for the Tianjin 12345 hotline.

All calendar reasoning happens in local time, ``Asia/Shanghai``. Every public function takes
timezone-aware datetimes (any zone; a naive datetime is rejected with ``ValueError``) and
returns aware datetimes in UTC, which is what callers store.

Which days are working days, in order of precedence:

1. ``overrides`` -- the admin table, ``date -> bool`` (True = working day, False = day off).
   An override always wins and always counts as official.
2. The official State Council calendar from the ``chinesecalendar`` package: weekends and
   public holidays are off, adjusted working days (调休, e.g. a worked Saturday) are on. The
   package covers 2004-2026 only.
3. Years listed in ``entered_years`` that have no official data: the admin has entered the
   whole year in the override table, so every date without an override is a plain
   Monday-Friday working day / Saturday-Sunday day off. This counts as official. A year that
   does have official data keeps using it; ``entered_years`` only replaces the fallback.
4. Fallback for any other year (after 2026, before 2004): Monday-Friday minus the statutory
   holidays that follow from the law alone, taken from ``holidays.country_holidays("CN",
   observed=False)`` (the ``holidays.China`` class). Such dates are not official, and a
   deadline that consulted any of them is marked ``provisional=True``.

   Choice of fallback holidays: only the holidays themselves (for 2027: New Year's Day, Spring
   Festival Eve and days 1-3, Tomb-Sweeping Day, Labour Day x2, Dragon Boat Festival,
   Mid-Autumn Festival, National Day x3). Substitute days are left out: the package's
   ``(observed)`` extras (e.g. 2027-02-09/10 for festival days falling on a weekend) are
   suppressed with ``observed=False``, and any special "Day off (substituted from ...)" entries
   it carries are filtered out by name, because the matching worked weekend days (调休) are
   not applied in the fallback and the two only make sense together. A statutory holiday on a
   weekend is therefore simply absorbed by the weekend. Fallback deadlines may differ from the
   eventual official ones by a few days; callers should recompute provisional deadlines once
   the year has been entered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays

__all__ = [
    "PERIOD_DOC",
    "SHANGHAI",
    "shanghai_time",
    "Deadline",
    "Period",
    "PeriodUnit",
    "WorkingCalendar",
]

SHANGHAI: ZoneInfo = ZoneInfo("Asia/Shanghai")


def shanghai_time(t: datetime) -> str:
    """A time as people at the hotline read it: in every error message and explanation."""
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S Asia/Shanghai")


# How periods read in every API response and policy setting (a schema description).
PERIOD_DOC = (
    "a period: <n>m minutes, <n>h hours, <n>d calendar days (these ignore the calendar), "
    "<n>wd working days on the State Council calendar (Art 9, 11), e.g. 15m, 24h, 7wd"
)

_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0, 0)
_SATURDAY = 5


class PeriodUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"


_UNIT_SUFFIX: dict[PeriodUnit, str] = {
    PeriodUnit.MINUTES: "m",
    PeriodUnit.HOURS: "h",
    PeriodUnit.CALENDAR_DAYS: "d",
    PeriodUnit.WORKING_DAYS: "wd",
}
_SUFFIX_UNIT: dict[str, PeriodUnit] = {suffix: unit for unit, suffix in _UNIT_SUFFIX.items()}
_PERIOD_RE = re.compile(r"([1-9][0-9]*)(wd|m|h|d)")


@dataclass(frozen=True)
class Period:
    """A time limit such as ``15m``, ``2h``, ``1d`` (calendar days) or ``7wd`` (working days).

    >>> Period.parse("7wd")
    Period(amount=7, unit=<PeriodUnit.WORKING_DAYS: 'working_days'>)
    >>> str(Period(2, PeriodUnit.HOURS))
    '2h'
    """

    amount: int
    unit: PeriodUnit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError(f"period amount must be an int, got {self.amount!r}")
        if self.amount <= 0:
            raise ValueError(f"period amount must be > 0, got {self.amount}")
        # Accept the plain string value ("hours") but always store the enum member.
        object.__setattr__(self, "unit", PeriodUnit(self.unit))

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse the compact form: a positive integer without leading zeros followed by
        ``m`` (minutes), ``h`` (hours), ``d`` (calendar days) or ``wd`` (working days).
        Strict: no whitespace, no sign, lowercase only. Raises ``ValueError`` otherwise."""
        match = _PERIOD_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"invalid period {text!r}; expected e.g. '15m', '2h', '1d', '7wd'")
        return cls(int(match.group(1)), _SUFFIX_UNIT[match.group(2)])

    def __str__(self) -> str:
        return f"{self.amount}{_UNIT_SUFFIX[self.unit]}"


@dataclass(frozen=True)
class Deadline:
    """A computed deadline. ``at`` is an aware UTC datetime. ``provisional`` is True when some
    date consulted to compute it had no official calendar data (fallback rule used)."""

    at: datetime
    provisional: bool


def _to_local(t: datetime) -> datetime:
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"timezone-aware datetime required, got naive {t!r}")
    return t.astimezone(SHANGHAI)


def _to_utc(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=SHANGHAI).astimezone(UTC)


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"number of working days must be an int, got {n!r}")
    if n < 0:
        raise ValueError(f"number of working days must be >= 0, got {n}")


@cache
def _has_official_data(year: int) -> bool:
    """Whether ``chinesecalendar`` has the State Council arrangement for ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def _is_substitute(name: str) -> bool:
    lowered = name.lower()
    return "substitut" in lowered or "observed" in lowered


@cache
def _statutory_holidays(year: int) -> frozenset[date]:
    """Statutory public holidays of ``year`` that follow from the law alone (computed once per
    year). Names are requested in English so the substitute-day filter is stable; one date may
    carry several names joined by "; " and is kept if any of them is a real holiday."""
    calendar = holidays.country_holidays(
        "CN", years=year, observed=False, categories=(holidays.PUBLIC,), language="en_US"
    )
    return frozenset(
        day
        for day, names in calendar.items()
        if day.year == year and not all(_is_substitute(n) for n in names.split("; "))
    )


class WorkingCalendar:
    """Working-day calendar: official data, admin overrides and a provisional fallback.

    ``overrides`` maps a ``date`` to True (working day) or False (day off) and wins over
    everything. ``entered_years`` lists years the admin has entered completely (see the module
    docstring). Lookups are cached per instance; build a new instance when the admin table
    changes.
    """

    def __init__(
        self,
        overrides: Mapping[date, bool] | None = None,
        entered_years: Iterable[int] = (),
    ) -> None:
        table: dict[date, bool] = {}
        for day, working in (overrides or {}).items():
            if isinstance(day, datetime) or not isinstance(day, date):
                raise TypeError(f"override keys must be datetime.date, got {day!r}")
            table[day] = bool(working)
        self._overrides: dict[date, bool] = table
        self._entered_years: frozenset[int] = frozenset(entered_years)
        # date -> (is working day, is official)
        self._cache: dict[date, tuple[bool, bool]] = {}

    # -- per-day lookups -------------------------------------------------------------------

    def _lookup(self, d: date) -> tuple[bool, bool]:
        cached = self._cache.get(d)
        if cached is None:
            cached = self._compute(d)
            self._cache[d] = cached
        return cached

    def _compute(self, d: date) -> tuple[bool, bool]:
        override = self._overrides.get(d)
        if override is not None:
            return override, True
        if _has_official_data(d.year):
            return bool(chinese_calendar.is_workday(d)), True
        weekday = d.weekday() < _SATURDAY
        if d.year in self._entered_years:
            return weekday, True
        return weekday and d not in _statutory_holidays(d.year), False

    def is_working_day(self, d: date) -> bool:
        """Whether the (local) date ``d`` is a working day. Pass a ``date``, not a datetime:
        convert to Shanghai local time first."""
        if isinstance(d, datetime):
            raise TypeError("is_working_day takes a date; convert the datetime to local first")
        return self._lookup(d)[0]

    def is_official(self, d: date) -> bool:
        """False when ``d`` falls back to the provisional Monday-Friday-minus-holidays rule."""
        if isinstance(d, datetime):
            raise TypeError("is_official takes a date; convert the datetime to local first")
        return self._lookup(d)[1]

    def missing_years(self, years: Iterable[int]) -> list[int]:
        """Sorted distinct years among ``years`` with no official data that were not entered.
        (A year with some overrides but not in ``entered_years`` still counts as missing.)"""
        return sorted(
            {y for y in years if y not in self._entered_years and not _has_official_data(y)}
        )

    # -- deadline arithmetic ---------------------------------------------------------------

    def add_working_days(self, t: datetime, n: int) -> Deadline:
        """Deadline ``n`` working days after ``t``.

        If ``t`` (in Shanghai local time) falls on a non-working day it is first moved to
        00:00 of the next working day. The deadline is then the same local time of day on the
        ``n``-th working day after that date (``n == 0`` returns the moved start).

        Examples (local time, ordinary weeks): Fri 16:00 + 1 = Mon 16:00;
        Sat 10:00 + 1 = Tue 00:00 (Sat 10:00 -> Mon 00:00, then one working day).

        ``provisional`` is True if any date from the start date to the deadline date
        (inclusive) had no official calendar data.
        """
        _check_count(n)
        local = _to_local(t)
        day = local.date()
        clock = local.time()
        working, official = self._lookup(day)
        provisional = not official
        if not working:
            clock = _MIDNIGHT
            while not working:
                day += _ONE_DAY
                working, official = self._lookup(day)
                provisional = provisional or not official
        remaining = n
        while remaining:
            day += _ONE_DAY
            working, official = self._lookup(day)
            provisional = provisional or not official
            if working:
                remaining -= 1
        return Deadline(at=_to_utc(day, clock), provisional=provisional)

    def subtract_working_days(self, t: datetime, n: int) -> Deadline:
        """Mirror of :meth:`add_working_days`, for rules such as "at least 1 working day
        before the deadline": the same local time of day as ``t`` on the ``n``-th working day
        before ``t``'s local date. Only working days strictly before that date are counted,
        so when the date itself is a non-working day the first working day before it counts
        as 1; the time of day is kept either way (no 00:00 normalisation; ``n == 0``
        returns ``t`` unchanged).

        Examples (local time, ordinary weeks): Mon 10:00 - 1 = Fri 10:00;
        Sun 10:00 - 1 = Fri 10:00; Wed 09:30 - 2 = Mon 09:30.

        For a ``t`` on a working day this is the exact inverse of ``add_working_days``
        (``add(subtract(t, n), n) == t``); for a ``t`` on a non-working day
        ``add(subtract(t, n), n)`` lands after ``t``. ``provisional`` is True if any date
        from the result date to ``t``'s date (inclusive) had no official data.
        """
        _check_count(n)
        local = _to_local(t)
        day = local.date()
        clock = local.time()
        provisional = not self._lookup(day)[1]
        remaining = n
        while remaining:
            day -= _ONE_DAY
            working, official = self._lookup(day)
            provisional = provisional or not official
            if working:
                remaining -= 1
        return Deadline(at=_to_utc(day, clock), provisional=provisional)

    def add(self, start: datetime, period: Period) -> Deadline:
        """Deadline ``period`` after ``start``. Minutes and hours are elapsed time and ignore
        the calendar; calendar days keep the local time of day and also ignore the calendar;
        both are never provisional. Working days dispatch to :meth:`add_working_days`."""
        local = _to_local(start)
        match period.unit:
            case PeriodUnit.MINUTES:
                at = local + timedelta(minutes=period.amount)
            case PeriodUnit.HOURS:
                at = local + timedelta(hours=period.amount)
            case PeriodUnit.CALENDAR_DAYS:
                at = datetime.combine(
                    local.date() + timedelta(days=period.amount), local.time(), tzinfo=SHANGHAI
                )
            case PeriodUnit.WORKING_DAYS:
                return self.add_working_days(start, period.amount)
        return Deadline(at=at.astimezone(UTC), provisional=False)

    def elapsed_fraction_point(
        self, start: datetime, deadline: datetime, fraction: float
    ) -> datetime:
        """Instant (aware UTC) at which ``fraction`` of the period ``start -> deadline`` has
        elapsed, e.g. 0.75 for a "75 % of the time limit used" warning.

        For simplicity this is measured in wall-clock (elapsed) time, not in working time:
        ``start + (deadline - start) * fraction``, so nights, weekends and holidays inside the
        period count like any other time. ``fraction`` must be finite and >= 0 (values above
        1 give points after the deadline); ``deadline`` must not be before ``start``.
        """
        if not math.isfinite(fraction) or fraction < 0:
            raise ValueError(f"fraction must be finite and >= 0, got {fraction!r}")
        start_utc = _to_local(start).astimezone(UTC)
        deadline_utc = _to_local(deadline).astimezone(UTC)
        if deadline_utc < start_utc:
            raise ValueError("deadline is before start")
        return start_utc + (deadline_utc - start_utc) * fraction
