"""The State Council holiday notice, pasted as published, gives the same working days as
the official calendar data (chinesecalendar) for every day of 2017, 2025 and 2026."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import chinese_calendar
import pytest

from shared.holiday_notice import NoticeError, parse_notice

NOTICES = Path(__file__).resolve().parents[2] / "fixtures" / "holiday_notices"


@pytest.mark.parametrize("year", [2017, 2025, 2026])
def test_every_day_of_the_year_matches_the_official_calendar(year: int) -> None:
    notice = parse_notice((NOTICES / f"{year}.txt").read_text(encoding="utf-8"))
    assert notice.year == year
    grid = notice.grid()
    assert len(grid) == (date(year + 1, 1, 1) - date(year, 1, 1)).days
    wrong = [d for d, working in grid.items() if working != chinese_calendar.is_workday(d)]
    assert wrong == []


def test_the_2025_notice_read_day_by_day() -> None:
    notice = parse_notice((NOTICES / "2025.txt").read_text(encoding="utf-8"))
    assert notice.holidays == ["元旦", "春节", "清明节", "劳动节", "端午节", "国庆节、中秋节"]
    assert sorted(notice.working_days) == [
        date(2025, 1, 26),
        date(2025, 2, 8),
        date(2025, 4, 27),
        date(2025, 9, 28),
        date(2025, 10, 11),
    ]
    assert notice.days_off[date(2025, 6, 2)] == "端午节"  # a range across a month end
    assert len([d for d, h in notice.days_off.items() if h == "春节"]) == 8


def test_a_make_up_day_off_and_days_of_the_year_before() -> None:
    notice = parse_notice(
        "国务院办公厅关于2019年部分节假日安排的通知\n"
        "一、元旦：2018年12月30日至2019年1月1日放假调休，共3天。2018年12月29日（星期六）上班。\n"
        "二、劳动节：5月1日放假，5月2日（星期四）补休。\n"
    )
    assert date(2018, 12, 30) in notice.days_off and date(2019, 1, 1) in notice.days_off
    assert date(2018, 12, 29) in notice.working_days
    assert date(2019, 5, 2) in notice.days_off


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("一、元旦：1月1日放假。", "title"),
        ("国务院办公厅关于2027年部分节假日安排的通知\n正文没有条目。", "no items"),
        ("国务院办公厅关于2027年部分节假日安排的通知\n一、春节：另行通知放假。", "without a date"),
        ("国务院办公厅关于2027年部分节假日安排的通知\n一、春节：2月30日放假。", "impossible"),
    ],
)
def test_what_cannot_be_read_is_refused_naming_it(text: str, reason: str) -> None:
    with pytest.raises(NoticeError) as refused:
        parse_notice(text)
    assert reason in str(refused.value)
