"""The State Council's yearly holiday notice (国务院办公厅关于20XX年部分节假日安排的通知),
read into day overrides for the working-day calendar. Pure: text in, days out.

Each item of the notice names a holiday and says, in one or more sentences, which days are
off (放假, 放假调休, 补休) and which weekend days are worked instead (上班). Dates are written
``M月D日``, ``D日`` (the month before it in the same sentence), or ``YYYY年M月D日`` (a day of
the year before, as in "2018年12月29日（星期六）上班"); a range is ``A至B``; a parenthesis
after a date (weekday, lunar day) is read past. Sentences that state no day change ("与周末
连休", "不调休", "共3天" on its own) add nothing. A sentence that says 放假, 补休 or 上班 but in
which no date can be read is an error naming it, so nothing in the notice is silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

_YEAR = re.compile(r"关于\s*(\d{4})\s*年\s*部分节假日安排")
_ITEM = re.compile(r"^\s*[一二三四五六七八九十]+\s*[、.．]\s*([^：:]+)[：:](.*)$")
_DATE = re.compile(r"(?:(\d{4})年)?(?:(\d{1,2})月)?(\d{1,2})日(?:\s*[（(][^）)]*[）)])?")
_RANGE_JOIN = re.compile(r"^\s*(?:至|到|—|-|~|～)\s*$")
_OFF = ("放假", "补休")
_ON = ("上班",)


class NoticeError(ValueError):
    """A sentence of the notice that could not be read; names it and where it is."""

    def __init__(self, reason: str, sentence: str = "", position: int = 0) -> None:
        super().__init__(f"{reason}: 「{sentence}」 at position {position}" if sentence else reason)
        self.reason = reason
        self.sentence = sentence
        self.position = position


@dataclass
class HolidayNotice:
    year: int
    days_off: dict[date, str] = field(default_factory=dict)  # day -> the holiday it is for
    working_days: dict[date, str] = field(default_factory=dict)  # adjusted working days (调休)
    holidays: list[str] = field(default_factory=list)

    def overrides(self) -> dict[date, bool]:
        """Every day the notice names: False for a day off, True for a day worked."""
        return {**{d: False for d in self.days_off}, **{d: True for d in self.working_days}}

    def grid(self) -> dict[date, bool]:
        """The whole year as working (True) or not: Monday–Friday, changed by the notice."""
        first = date(self.year, 1, 1)
        days = (date(self.year + 1, 1, 1) - first).days
        overrides = self.overrides()
        return {
            d: overrides.get(d, d.weekday() < 5)
            for d in (first + timedelta(days=i) for i in range(days))
        }


def _dates(sentence: str, year: int) -> list[date]:
    """Every date in the sentence, ranges expanded, in order."""
    found: list[date] = []
    month: int | None = None
    pending_range_from: date | None = None
    last_end = 0
    for m in _DATE.finditer(sentence):
        y = int(m.group(1)) if m.group(1) else year
        if m.group(2):
            month = int(m.group(2))
        if month is None:
            raise NoticeError("a day without its month", sentence, m.start())
        day = date(y, month, int(m.group(3)))
        between = sentence[last_end : m.start()]
        if found and _RANGE_JOIN.match(between):
            pending_range_from = found[-1]
        if pending_range_from is not None:
            if day < pending_range_from:  # a range running into the next year
                day = date(y + 1, month, int(m.group(3)))
            cursor = pending_range_from + timedelta(days=1)
            while cursor <= day:
                found.append(cursor)
                cursor += timedelta(days=1)
            pending_range_from = None
        else:
            found.append(day)
        last_end = m.end()
    return found


def parse_notice(text: str, year: int | None = None) -> HolidayNotice:
    """Read the notice's items into days off and adjusted working days."""
    title = _YEAR.search(text)
    if year is None:
        if title is None:
            raise NoticeError("the notice's title with its year (关于20XX年部分节假日安排的通知)")
        year = int(title.group(1))
    elif title is not None and int(title.group(1)) != year:
        raise NoticeError(f"the notice is for {title.group(1)}, not {year}")
    notice = HolidayNotice(year)
    offset = 0
    for line in text.splitlines(keepends=True):
        item = _ITEM.match(line)
        start = offset
        offset += len(line)
        if item is None:
            continue
        name = item.group(1).strip()
        notice.holidays.append(name)
        body_start = start + item.start(2)
        position = body_start
        for sentence in re.split(r"(?<=[。；;])", item.group(2)):
            here = position
            position += len(sentence)
            if not sentence.strip():
                continue
            off = any(w in sentence for w in _OFF) and "不放假" not in sentence
            on = any(w in sentence for w in _ON)
            if not (off or on):
                continue
            try:
                days = _dates(sentence, year)
            except ValueError as exc:
                if isinstance(exc, NoticeError):
                    raise NoticeError(exc.reason, sentence.strip(), here) from None
                raise NoticeError(f"an impossible date ({exc})", sentence.strip(), here) from None
            if not days:
                if "不调休" in sentence or "连休" in sentence:
                    continue
                raise NoticeError("放假/补休/上班 without a date", sentence.strip(), here)
            if off and on:
                # "…放假调休，共3天。…上班" in one sentence: split at the first 上班 clause
                cut = sentence.index("上班")
                clause = sentence.rfind("，", 0, cut) + 1 or sentence.rfind("。", 0, cut) + 1
                off_days = _dates(sentence[:clause], year)
                on_days = _dates(sentence[clause:], year)
            else:
                off_days, on_days = (days, []) if off else ([], days)
            for d in off_days:
                notice.days_off[d] = name
            for d in on_days:
                notice.working_days[d] = name
    if not notice.holidays:
        raise NoticeError("no items (一、元旦：…) found in the notice")
    clash = sorted(set(notice.days_off) & set(notice.working_days))
    if clash:
        raise NoticeError(f"{clash[0]} is both a day off and a working day")
    return notice
