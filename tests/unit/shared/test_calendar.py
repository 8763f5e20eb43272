"""Tests for shared.calendar: working days, deadlines and periods.

Official 2026 data used below (from chinesecalendar, printed while writing these tests):

* Spring Festival: 2026-02-15 (Sun) .. 2026-02-23 (Mon) off; adjusted working days
  2026-02-14 (Sat) and 2026-02-28 (Sat).
* Mid-Autumn: 2026-09-25 (Fri) off (with the weekend 26-27).
* National Day: 2026-10-01 (Thu) .. 2026-10-07 (Wed) off, 2026-10-08 (Thu) is a working day;
  adjusted working days 2026-09-20 (Sun) and 2026-10-10 (Sat).
* 2027 has no official data: the fallback uses holidays.China (2027-01-01 Fri is New Year's
  Day; 2027-02-09/10 are "observed" substitutes that the fallback ignores).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays
import pytest

import shared.calendar as cal_module
from shared.calendar import SHANGHAI, Deadline, Period, PeriodUnit, WorkingCalendar

CAL = WorkingCalendar()


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """Shanghai local time."""
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def assert_deadline(result: Deadline, expected: datetime, provisional: bool) -> None:
    assert result.at == expected, f"{result.at.astimezone(SHANGHAI)} != {expected}"
    assert result.at.tzinfo is UTC
    assert result.provisional is provisional


# --------------------------------------------------------------------------------------------
# The official data the tests rely on (guards against a chinesecalendar upgrade changing it)
# --------------------------------------------------------------------------------------------

FEB_2026_OFF_WEEKDAYS = [date(2026, 2, d) for d in (16, 17, 18, 19, 20, 23)]
FEB_2026_ADJUSTED_WORKING = [date(2026, 2, 14), date(2026, 2, 28)]


def test_official_2026_data_matches_assumptions() -> None:
    feb = [date(2026, 2, d) for d in range(1, 29)]
    off_weekdays = [d for d in feb if d.weekday() < 5 and not chinese_calendar.is_workday(d)]
    worked_weekend = [d for d in feb if d.weekday() >= 5 and chinese_calendar.is_workday(d)]
    assert off_weekdays == FEB_2026_OFF_WEEKDAYS
    assert worked_weekend == FEB_2026_ADJUSTED_WORKING
    assert not chinese_calendar.is_workday(date(2026, 2, 15))  # Sunday, festival
    assert chinese_calendar.is_workday(date(2026, 9, 20))
    assert chinese_calendar.is_workday(date(2026, 10, 10))
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))


# --------------------------------------------------------------------------------------------
# is_working_day / is_official
# --------------------------------------------------------------------------------------------

WORKING_DAY_CASES: list[tuple[str, date, bool, bool]] = [
    # id, date, working, official
    ("normal monday", date(2026, 3, 9), True, True),
    ("normal saturday", date(2026, 3, 7), False, True),
    ("normal sunday", date(2026, 3, 8), False, True),
    ("spring festival monday", date(2026, 2, 16), False, True),
    ("spring festival sunday", date(2026, 2, 15), False, True),
    ("adjusted saturday 02-14", date(2026, 2, 14), True, True),
    ("adjusted saturday 02-28", date(2026, 2, 28), True, True),
    ("national day thu", date(2026, 10, 1), False, True),
    ("national day wed 10-07", date(2026, 10, 7), False, True),
    ("after national day 10-08", date(2026, 10, 8), True, True),
    ("adjusted sunday 09-20", date(2026, 9, 20), True, True),
    ("adjusted saturday 10-10", date(2026, 10, 10), True, True),
    ("mid-autumn friday", date(2026, 9, 25), False, True),
    ("fallback new year 2027", date(2027, 1, 1), False, False),
    ("fallback monday 2027", date(2027, 1, 4), True, False),
    ("fallback saturday 2027", date(2027, 1, 2), False, False),
    ("fallback spring festival eve 2027", date(2027, 2, 5), False, False),
    ("fallback spring festival mon 2027", date(2027, 2, 8), False, False),
    ("fallback ignores observed 2027-02-09", date(2027, 2, 9), True, False),
    ("fallback ignores observed 2027-10-04", date(2027, 10, 4), True, False),
    ("fallback national day fri 2027", date(2027, 10, 1), False, False),
    ("fallback pre-2004 holiday", date(2003, 2, 3), False, False),
    ("fallback ignores pre-2004 substituted day off", date(2003, 2, 6), True, False),
]


@pytest.mark.parametrize(
    ("day", "working", "official"),
    [c[1:] for c in WORKING_DAY_CASES],
    ids=[c[0] for c in WORKING_DAY_CASES],
)
def test_is_working_day(day: date, working: bool, official: bool) -> None:
    assert CAL.is_working_day(day) is working
    assert CAL.is_official(day) is official


OVERRIDE_CASES: list[tuple[str, dict[date, bool], list[int], date, bool, bool]] = [
    # id, overrides, entered_years, date, working, official
    ("weekday made holiday", {date(2026, 3, 9): False}, [], date(2026, 3, 9), False, True),
    ("saturday made working", {date(2026, 3, 7): True}, [], date(2026, 3, 7), True, True),
    ("override beats festival", {date(2026, 2, 16): True}, [], date(2026, 2, 16), True, True),
    ("override beats adjusted", {date(2026, 2, 14): False}, [], date(2026, 2, 14), False, True),
    ("override in 2027 is official", {date(2027, 1, 4): False}, [], date(2027, 1, 4), False, True),
    ("entered 2027 weekday", {}, [2027], date(2027, 1, 4), True, True),
    ("entered 2027: no fallback holidays", {}, [2027], date(2027, 1, 1), True, True),
    ("entered 2027 weekend", {}, [2027], date(2027, 1, 2), False, True),
    ("entered 2027 override off", {date(2027, 1, 1): False}, [2027], date(2027, 1, 1), False, True),
    ("entered 2027 override on", {date(2027, 1, 2): True}, [2027], date(2027, 1, 2), True, True),
    ("entered 2027 leaves 2028 alone", {}, [2027], date(2028, 1, 3), True, False),
    ("entered 2026 keeps official data", {}, [2026], date(2026, 2, 16), False, True),
]


@pytest.mark.parametrize(
    ("overrides", "entered", "day", "working", "official"),
    [c[1:] for c in OVERRIDE_CASES],
    ids=[c[0] for c in OVERRIDE_CASES],
)
def test_overrides_and_entered_years(
    overrides: dict[date, bool], entered: list[int], day: date, working: bool, official: bool
) -> None:
    calendar = WorkingCalendar(overrides=overrides, entered_years=entered)
    assert calendar.is_working_day(day) is working
    assert calendar.is_official(day) is official


def test_override_keys_must_be_dates() -> None:
    with pytest.raises(TypeError):
        WorkingCalendar(overrides={sh(2026, 3, 9): False})


def test_is_working_day_rejects_datetime() -> None:
    with pytest.raises(TypeError):
        CAL.is_working_day(sh(2026, 3, 9, 10))
    with pytest.raises(TypeError):
        CAL.is_official(sh(2026, 3, 9, 10))


# --------------------------------------------------------------------------------------------
# add_working_days
# --------------------------------------------------------------------------------------------

ADD_CASES: list[tuple[str, datetime, int, datetime, bool]] = [
    # id, start (local), n, expected deadline (local), provisional
    ("fri 16:00 + 1 = mon 16:00", sh(2026, 3, 6, 16), 1, sh(2026, 3, 9, 16), False),
    ("sat 10:00 + 1 = tue 00:00", sh(2026, 3, 7, 10), 1, sh(2026, 3, 10), False),
    ("sun 10:00 + 1 = tue 00:00", sh(2026, 3, 8, 10), 1, sh(2026, 3, 10), False),
    ("sat 10:00 + 0 = mon 00:00", sh(2026, 3, 7, 10), 0, sh(2026, 3, 9), False),
    ("wed 10:00 + 0 unchanged", sh(2026, 3, 4, 10), 0, sh(2026, 3, 4, 10), False),
    ("mon 09:00 + 7 across weekend", sh(2026, 3, 2, 9), 7, sh(2026, 3, 11, 9), False),
    ("wed 14:30 + 7 across weekend", sh(2026, 3, 4, 14, 30), 7, sh(2026, 3, 13, 14, 30), False),
    ("fri 23:59 + 1 keeps minute", sh(2026, 3, 6, 23, 59), 1, sh(2026, 3, 9, 23, 59), False),
    # Spring Festival 2026
    ("thu before festival + 1", sh(2026, 2, 12, 10), 1, sh(2026, 2, 13, 10), False),
    ("fri + 1 lands on adjusted sat", sh(2026, 2, 13, 16), 1, sh(2026, 2, 14, 16), False),
    ("fri + 2 jumps the festival", sh(2026, 2, 13, 16), 2, sh(2026, 2, 24, 16), False),
    ("wed + 7 across festival", sh(2026, 2, 11, 11), 7, sh(2026, 2, 27, 11), False),
    ("wed + 8 lands on adjusted sat", sh(2026, 2, 11, 11), 8, sh(2026, 2, 28, 11), False),
    ("wed + 9 after adjusted sat", sh(2026, 2, 11, 11), 9, sh(2026, 3, 2, 11), False),
    ("start on adjusted sat counts it", sh(2026, 2, 14, 9), 1, sh(2026, 2, 24, 9), False),
    ("start on adjusted sat + 0 stays", sh(2026, 2, 14, 9), 0, sh(2026, 2, 14, 9), False),
    ("start in festival + 1", sh(2026, 2, 17, 15), 1, sh(2026, 2, 25), False),
    ("start on festival sunday + 3", sh(2026, 2, 15, 8), 3, sh(2026, 2, 27), False),
    # Mid-Autumn and National Day 2026
    ("adjusted sunday 09-20 counts", sh(2026, 9, 18, 10), 1, sh(2026, 9, 20, 10), False),
    ("mid-autumn friday skipped", sh(2026, 9, 24, 10), 1, sh(2026, 9, 28, 10), False),
    ("sep 30 + 1 = oct 8", sh(2026, 9, 30, 17), 1, sh(2026, 10, 8, 17), False),
    ("sep 29 + 4 lands on adjusted sat", sh(2026, 9, 29, 9), 4, sh(2026, 10, 10, 9), False),
    ("sep 29 + 5 = oct 12", sh(2026, 9, 29, 9), 5, sh(2026, 10, 12, 9), False),
    ("start in national day + 1", sh(2026, 10, 4, 12), 1, sh(2026, 10, 9), False),
    # Into 2027 (no official data): fallback, provisional
    ("dec 28 + 3 stays in 2026", sh(2026, 12, 28, 10), 3, sh(2026, 12, 31, 10), False),
    ("dec 28 + 4 consults 2027", sh(2026, 12, 28, 10), 4, sh(2027, 1, 4, 10), True),
    ("dec 28 + 7 skips 2027-01-01", sh(2026, 12, 28, 10), 7, sh(2027, 1, 7, 10), True),
    ("start inside 2027 + 0", sh(2027, 1, 5, 10), 0, sh(2027, 1, 5, 10), True),
    ("2027 fallback skips festival", sh(2027, 2, 4, 10), 1, sh(2027, 2, 9, 10), True),
]


@pytest.mark.parametrize(
    ("start", "n", "expected", "provisional"),
    [c[1:] for c in ADD_CASES],
    ids=[c[0] for c in ADD_CASES],
)
def test_add_working_days(start: datetime, n: int, expected: datetime, provisional: bool) -> None:
    assert_deadline(CAL.add_working_days(start, n), expected, provisional)


CUSTOM_ADD_CASES: list[tuple[str, dict[date, bool], list[int], datetime, int, datetime, bool]] = [
    # id, overrides, entered_years, start, n, expected, provisional
    (
        "2027 entered with new year override",
        {date(2027, 1, 1): False},
        [2027],
        sh(2026, 12, 28, 10),
        7,
        sh(2027, 1, 7, 10),
        False,
    ),
    (
        "2027 entered without overrides is plain mon-fri",
        {},
        [2027],
        sh(2026, 12, 28, 10),
        7,
        sh(2027, 1, 6, 10),
        False,
    ),
    (
        "2027 entered, adjusted saturday override counts",
        {date(2027, 1, 1): False, date(2027, 1, 2): True},
        [2027],
        sh(2026, 12, 28, 10),
        7,
        sh(2027, 1, 6, 10),
        False,
    ),
    (
        "override only (not entered) is still provisional",
        {date(2027, 1, 1): False},
        [],
        sh(2026, 12, 28, 10),
        7,
        sh(2027, 1, 7, 10),
        True,
    ),
    (
        "weekday made holiday shifts the deadline",
        {date(2026, 3, 9): False},
        [],
        sh(2026, 3, 6, 16),
        1,
        sh(2026, 3, 10, 16),
        False,
    ),
    (
        "saturday made working day",
        {date(2026, 3, 7): True},
        [],
        sh(2026, 3, 6, 16),
        1,
        sh(2026, 3, 7, 16),
        False,
    ),
    (
        "override opens a festival day",
        {date(2026, 2, 16): True},
        [],
        sh(2026, 2, 13, 16),
        2,
        sh(2026, 2, 16, 16),
        False,
    ),
    (
        "override closes an adjusted saturday",
        {date(2026, 2, 14): False},
        [],
        sh(2026, 2, 13, 16),
        1,
        sh(2026, 2, 24, 16),
        False,
    ),
    (
        "start moved past overridden holiday",
        {date(2026, 3, 9): False},
        [],
        sh(2026, 3, 7, 10),
        0,
        sh(2026, 3, 10),
        False,
    ),
]


@pytest.mark.parametrize(
    ("overrides", "entered", "start", "n", "expected", "provisional"),
    [c[1:] for c in CUSTOM_ADD_CASES],
    ids=[c[0] for c in CUSTOM_ADD_CASES],
)
def test_add_working_days_with_overrides(
    overrides: dict[date, bool],
    entered: list[int],
    start: datetime,
    n: int,
    expected: datetime,
    provisional: bool,
) -> None:
    calendar = WorkingCalendar(overrides=overrides, entered_years=entered)
    assert_deadline(calendar.add_working_days(start, n), expected, provisional)


# --------------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------------

TZ_CASES: list[tuple[str, datetime, int, datetime]] = [
    # Friday 08:00 UTC is Friday 16:00 in Shanghai -> Monday 16:00 Shanghai = Monday 08:00 UTC.
    ("fri 08:00 utc", utc(2026, 3, 6, 8), 1, utc(2026, 3, 9, 8)),
    # Friday 20:00 UTC is already Saturday 04:00 in Shanghai -> Tuesday 00:00 Shanghai.
    ("fri 20:00 utc is saturday locally", utc(2026, 3, 6, 20), 1, utc(2026, 3, 9, 16)),
    # Sunday 17:00 UTC is Monday 01:00 in Shanghai: a working day, time kept.
    ("sun 17:00 utc is monday locally", utc(2026, 3, 8, 17), 1, utc(2026, 3, 9, 17)),
    # New York 03:00 (EST, UTC-5) on Friday = Friday 16:00 Shanghai.
    (
        "new york input",
        datetime(2026, 3, 6, 3, tzinfo=ZoneInfo("America/New_York")),
        1,
        sh(2026, 3, 9, 16),
    ),
]


@pytest.mark.parametrize(
    ("start", "n", "expected"), [c[1:] for c in TZ_CASES], ids=[c[0] for c in TZ_CASES]
)
def test_input_interpreted_in_shanghai_time(start: datetime, n: int, expected: datetime) -> None:
    assert_deadline(CAL.add_working_days(start, n), expected, False)


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2026, 3, 6, 16)
    with pytest.raises(ValueError):
        CAL.add_working_days(naive, 1)
    with pytest.raises(ValueError):
        CAL.subtract_working_days(naive, 1)
    with pytest.raises(ValueError):
        CAL.add(naive, Period(2, PeriodUnit.HOURS))
    with pytest.raises(ValueError):
        CAL.elapsed_fraction_point(naive, sh(2026, 3, 9, 16), 0.5)


@pytest.mark.parametrize("n", [-1, True, 1.0])
def test_bad_day_counts_rejected(n: Any) -> None:
    with pytest.raises(ValueError):
        CAL.add_working_days(sh(2026, 3, 6, 16), n)
    with pytest.raises(ValueError):
        CAL.subtract_working_days(sh(2026, 3, 6, 16), n)


# --------------------------------------------------------------------------------------------
# subtract_working_days
# --------------------------------------------------------------------------------------------

SUBTRACT_CASES: list[tuple[str, datetime, int, datetime, bool]] = [
    # id, deadline (local), n, expected (local), provisional
    ("mon 10:00 - 1 = fri 10:00", sh(2026, 3, 9, 10), 1, sh(2026, 3, 6, 10), False),
    ("wed 09:30 - 2 = mon 09:30", sh(2026, 3, 11, 9, 30), 2, sh(2026, 3, 9, 9, 30), False),
    ("tue 00:00 - 1 = mon 00:00", sh(2026, 3, 10), 1, sh(2026, 3, 9), False),
    ("sun 10:00 - 1 = fri 10:00", sh(2026, 3, 8, 10), 1, sh(2026, 3, 6, 10), False),
    ("sat 10:00 - 1 = fri 10:00", sh(2026, 3, 7, 10), 1, sh(2026, 3, 6, 10), False),
    ("sun 10:00 - 0 unchanged", sh(2026, 3, 8, 10), 0, sh(2026, 3, 8, 10), False),
    ("wed 09:00 - 7 across weekend", sh(2026, 3, 11, 9), 7, sh(2026, 3, 2, 9), False),
    # Spring Festival 2026
    ("tue after festival - 1 = adjusted sat", sh(2026, 2, 24, 16), 1, sh(2026, 2, 14, 16), False),
    ("tue after festival - 2 = fri", sh(2026, 2, 24, 16), 2, sh(2026, 2, 13, 16), False),
    ("inside festival - 1 = adjusted sat", sh(2026, 2, 19, 12), 1, sh(2026, 2, 14, 12), False),
    ("mon mar 2 - 9 = wed feb 11", sh(2026, 3, 2, 11), 9, sh(2026, 2, 11, 11), False),
    ("adjusted sat feb 28 - 1 = fri", sh(2026, 2, 28, 11), 1, sh(2026, 2, 27, 11), False),
    # National Day 2026
    ("oct 8 - 1 = sep 30", sh(2026, 10, 8, 17), 1, sh(2026, 9, 30, 17), False),
    ("oct 12 - 1 = adjusted sat oct 10", sh(2026, 10, 12, 9), 1, sh(2026, 10, 10, 9), False),
    # From 2027 back into 2026
    ("jan 7 2027 - 7 = dec 28 2026", sh(2027, 1, 7, 10), 7, sh(2026, 12, 28, 10), True),
]


@pytest.mark.parametrize(
    ("deadline", "n", "expected", "provisional"),
    [c[1:] for c in SUBTRACT_CASES],
    ids=[c[0] for c in SUBTRACT_CASES],
)
def test_subtract_working_days(
    deadline: datetime, n: int, expected: datetime, provisional: bool
) -> None:
    assert_deadline(CAL.subtract_working_days(deadline, n), expected, provisional)


def test_subtract_with_override() -> None:
    calendar = WorkingCalendar(overrides={date(2026, 3, 6): False})
    assert_deadline(
        calendar.subtract_working_days(sh(2026, 3, 9, 10), 1), sh(2026, 3, 5, 10), False
    )


@pytest.mark.parametrize("n", [1, 2, 5, 7, 10])
def test_subtract_inverts_add_on_working_days(n: int) -> None:
    start = sh(2026, 2, 2, 9, 15)
    while start < sh(2026, 3, 10):
        if CAL.is_working_day(start.date()):
            deadline = CAL.add_working_days(start, n).at
            assert CAL.subtract_working_days(deadline, n).at == start
        start += timedelta(hours=13)


# --------------------------------------------------------------------------------------------
# add(): dispatch on the period unit; calendar time ignores the calendar
# --------------------------------------------------------------------------------------------

ADD_PERIOD_CASES: list[tuple[str, datetime, str, datetime, bool]] = [
    ("15m across midnight", sh(2026, 3, 6, 23, 50), "15m", sh(2026, 3, 7, 0, 5), False),
    ("15m on a holiday", sh(2026, 2, 16, 10), "15m", sh(2026, 2, 16, 10, 15), False),
    ("2h across midnight into festival", sh(2026, 2, 14, 23), "2h", sh(2026, 2, 15, 1), False),
    ("2h on a saturday", sh(2026, 3, 7, 10), "2h", sh(2026, 3, 7, 12), False),
    ("24h into national day", sh(2026, 9, 30, 12), "24h", sh(2026, 10, 1, 12), False),
    ("24h into fallback year", sh(2026, 12, 31, 12), "24h", sh(2027, 1, 1, 12), False),
    ("24h fri into sat", sh(2026, 3, 6, 16), "24h", sh(2026, 3, 7, 16), False),
    ("1d calendar on weekend", sh(2026, 3, 7, 10), "1d", sh(2026, 3, 8, 10), False),
    ("3d calendar in festival", sh(2026, 2, 15, 8), "3d", sh(2026, 2, 18, 8), False),
    ("1wd dispatches", sh(2026, 3, 6, 16), "1wd", sh(2026, 3, 9, 16), False),
    ("7wd across festival", sh(2026, 2, 11, 11), "7wd", sh(2026, 2, 27, 11), False),
    ("7wd into 2027 provisional", sh(2026, 12, 28, 10), "7wd", sh(2027, 1, 7, 10), True),
]


@pytest.mark.parametrize(
    ("start", "period", "expected", "provisional"),
    [c[1:] for c in ADD_PERIOD_CASES],
    ids=[c[0] for c in ADD_PERIOD_CASES],
)
def test_add_period(start: datetime, period: str, expected: datetime, provisional: bool) -> None:
    assert_deadline(CAL.add(start, Period.parse(period)), expected, provisional)


def test_calendar_time_ignores_overrides() -> None:
    calendar = WorkingCalendar(overrides={date(2026, 3, 7): True, date(2026, 3, 9): False})
    assert_deadline(
        calendar.add(sh(2026, 3, 6, 16), Period.parse("24h")), sh(2026, 3, 7, 16), False
    )
    assert_deadline(calendar.add(sh(2026, 3, 8, 16), Period.parse("1d")), sh(2026, 3, 9, 16), False)


# --------------------------------------------------------------------------------------------
# elapsed_fraction_point (wall-clock time)
# --------------------------------------------------------------------------------------------

FRACTION_CASES: list[tuple[str, datetime, datetime, float, datetime]] = [
    # Fri 16:00 -> Mon 16:00 is 72 h of wall-clock time; the weekend counts.
    ("75% over a weekend", sh(2026, 3, 6, 16), sh(2026, 3, 9, 16), 0.75, sh(2026, 3, 8, 22)),
    ("50% over a weekend", sh(2026, 3, 6, 16), sh(2026, 3, 9, 16), 0.5, sh(2026, 3, 8, 4)),
    ("0% is the start", sh(2026, 3, 6, 16), sh(2026, 3, 9, 16), 0.0, sh(2026, 3, 6, 16)),
    ("100% is the deadline", sh(2026, 3, 6, 16), sh(2026, 3, 9, 16), 1.0, sh(2026, 3, 9, 16)),
    ("75% of 2h", sh(2026, 3, 6, 23), sh(2026, 3, 7, 1), 0.75, sh(2026, 3, 7, 0, 30)),
    ("150% is overdue", sh(2026, 3, 6, 10), sh(2026, 3, 6, 12), 1.5, sh(2026, 3, 6, 13)),
    ("mixed zones", utc(2026, 3, 6, 8), sh(2026, 3, 9, 16), 0.75, utc(2026, 3, 8, 14)),
]


@pytest.mark.parametrize(
    ("start", "deadline", "fraction", "expected"),
    [c[1:] for c in FRACTION_CASES],
    ids=[c[0] for c in FRACTION_CASES],
)
def test_elapsed_fraction_point(
    start: datetime, deadline: datetime, fraction: float, expected: datetime
) -> None:
    point = CAL.elapsed_fraction_point(start, deadline, fraction)
    assert point == expected
    assert point.tzinfo is UTC


@pytest.mark.parametrize("fraction", [-0.1, float("nan"), float("inf")])
def test_elapsed_fraction_point_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError):
        CAL.elapsed_fraction_point(sh(2026, 3, 6, 16), sh(2026, 3, 9, 16), fraction)


def test_elapsed_fraction_point_rejects_reversed_period() -> None:
    with pytest.raises(ValueError):
        CAL.elapsed_fraction_point(sh(2026, 3, 9, 16), sh(2026, 3, 6, 16), 0.5)


# --------------------------------------------------------------------------------------------
# missing_years
# --------------------------------------------------------------------------------------------

MISSING_CASES: list[tuple[str, list[int], list[int], list[int]]] = [
    ("official years are not missing", [], [2004, 2025, 2026], []),
    ("future years missing, sorted, deduplicated", [], [2028, 2026, 2027, 2028], [2027, 2028]),
    ("entered years are not missing", [2027], [2026, 2027, 2028], [2028]),
    ("years before the data are missing", [], [2003, 2004], [2003]),
    ("empty input", [], [], []),
]


@pytest.mark.parametrize(
    ("entered", "years", "expected"),
    [c[1:] for c in MISSING_CASES],
    ids=[c[0] for c in MISSING_CASES],
)
def test_missing_years(entered: list[int], years: list[int], expected: list[int]) -> None:
    assert WorkingCalendar(entered_years=entered).missing_years(years) == expected


def test_missing_years_ignores_partial_overrides() -> None:
    calendar = WorkingCalendar(overrides={date(2027, 1, 1): False})
    assert calendar.missing_years([2027]) == [2027]


# --------------------------------------------------------------------------------------------
# Period
# --------------------------------------------------------------------------------------------

PARSE_CASES: list[tuple[str, Period]] = [
    ("15m", Period(15, PeriodUnit.MINUTES)),
    ("2h", Period(2, PeriodUnit.HOURS)),
    ("24h", Period(24, PeriodUnit.HOURS)),
    ("1d", Period(1, PeriodUnit.CALENDAR_DAYS)),
    ("7wd", Period(7, PeriodUnit.WORKING_DAYS)),
    ("120wd", Period(120, PeriodUnit.WORKING_DAYS)),
]


@pytest.mark.parametrize(("text", "period"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_period_parse_round_trip(text: str, period: Period) -> None:
    assert Period.parse(text) == period
    assert str(period) == text
    assert Period.parse(str(period)) == period


BAD_PERIODS = [
    "",
    "0m",
    "0wd",
    "-1h",
    "+1h",
    "1.5h",
    "7 wd",
    " 2h",
    "2h ",
    "2h\n",
    "7WD",
    "2H",
    "wd",
    "7",
    "7w",
    "07wd",
    "1dd",
    "1y",
    "1s",
    "\u0661m",  # Arabic-Indic digit one
]


@pytest.mark.parametrize("text", BAD_PERIODS)
def test_period_parse_rejects_bad_strings(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


@pytest.mark.parametrize(
    ("amount", "unit"),
    [
        (0, PeriodUnit.HOURS),
        (-3, PeriodUnit.WORKING_DAYS),
        (True, PeriodUnit.MINUTES),
        (1.5, PeriodUnit.HOURS),
        (1, "fortnights"),
    ],
)
def test_period_rejects_bad_values(amount: Any, unit: Any) -> None:
    with pytest.raises(ValueError):
        Period(amount, unit)


def test_period_coerces_unit_string_and_is_frozen() -> None:
    period = Period(2, "hours")  # type: ignore[arg-type]
    assert period.unit is PeriodUnit.HOURS
    assert period == Period(2, PeriodUnit.HOURS)
    with pytest.raises(AttributeError):
        period.amount = 3  # type: ignore[misc]


def test_period_unit_values() -> None:
    assert [u.value for u in PeriodUnit] == [
        "minutes",
        "hours",
        "calendar_days",
        "working_days",
    ]
    assert str(PeriodUnit.WORKING_DAYS) == "working_days"


def test_shanghai_zone() -> None:
    assert SHANGHAI.key == "Asia/Shanghai"


# --------------------------------------------------------------------------------------------
# Caching
# --------------------------------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return calls


def test_official_lookups_are_cached_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, chinese_calendar, "is_workday")
    calendar = WorkingCalendar()
    day = date(2026, 2, 16)
    for _ in range(5):
        assert calendar.is_working_day(day) is False
        assert calendar.is_official(day) is True
    assert calls.count((day,)) == 1


def test_fallback_holidays_computed_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    cal_module._statutory_holidays.cache_clear()
    calls = _counting(monkeypatch, holidays, "country_holidays")
    try:
        first, second = WorkingCalendar(), WorkingCalendar()
        for calendar in (first, second):
            for offset in range(60):
                calendar.is_working_day(date(2027, 1, 1) + timedelta(days=offset))
        assert len(calls) == 1
    finally:
        cal_module._statutory_holidays.cache_clear()
