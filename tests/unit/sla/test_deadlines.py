"""Every clock of every urgency class, from the default policy (RULES.md §4)."""

import pytest

from services.sla.domain import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    ClockKind,
    ClockState,
    Policy,
    clock_state,
    deadline_for,
    lateness_seconds,
)
from shared.calendar import WorkingCalendar
from shared.policy import PolicyVersions
from tests.conftest import at

POLICY = Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
CALENDAR = WorkingCalendar()
D, A, C = ClockKind.DISPATCH, ClockKind.ACCEPTANCE, ClockKind.COMPLETION


@pytest.mark.parametrize(
    ("kind", "urgency", "start", "expected", "statutory"),
    [
        # life_safety: dispatch at once (5 min), accept 15 min, complete 2 h — calendar time
        (D, "life_safety", "2026-02-16 23:58", "2026-02-17 00:03", None),
        (A, "life_safety", "2026-02-16 23:50", "2026-02-17 00:05", None),
        (C, "life_safety", "2026-02-17 23:00", "2026-02-18 01:00", None),
        # livelihood: 5 min, 30 min, 24 h — across midnight and a holiday, calendar time
        (D, "livelihood", "2026-10-01 10:00", "2026-10-01 10:05", None),
        (A, "livelihood", "2026-10-01 23:45", "2026-10-02 00:15", None),
        (C, "livelihood", "2026-09-30 18:00", "2026-10-01 18:00", None),
        # general: dispatch within 24 h (calendar), accept in 1 working day, complete in 7
        (D, "general", "2026-03-06 16:00", "2026-03-07 16:00", None),
        (A, "general", "2026-03-06 16:00", "2026-03-09 16:00", None),  # Fri → Mon
        (A, "general", "2026-03-07 10:00", "2026-03-10 00:00", None),  # Sat → Tue 00:00
        (C, "general", "2026-03-02 09:30", "2026-03-11 09:30", None),  # a plain fortnight
        # Spring Festival 2026: Feb 15–23 off, Sat Feb 14 and Sat Feb 28 worked
        (A, "general", "2026-02-13 16:00", "2026-02-14 16:00", None),  # adjusted Saturday
        (A, "general", "2026-02-14 11:00", "2026-02-24 11:00", None),
        (C, "general", "2026-02-12 10:00", "2026-02-28 10:00", None),  # counts both Saturdays
        (C, "general", "2026-02-15 10:00", "2026-03-04 00:00", None),  # starts in the holiday
        # National Day 2026: Oct 1–7 off, Sun Sep 20 and Sat Oct 10 worked
        (A, "general", "2026-09-30 16:00", "2026-10-08 16:00", None),
        (C, "general", "2026-09-29 10:00", "2026-10-14 10:00", None),  # counts Sat Oct 10
        (A, "general", "2026-09-19 10:00", "2026-09-21 00:00", None),  # Sat → worked Sun 00:00, +1
        # a statutory period replaces the completion period (Art 11)
        (C, "general", "2026-03-02 09:30", "2026-03-16 09:30", "10wd"),
        (C, "life_safety", "2026-03-02 09:30", "2026-03-02 13:30", "4h"),
    ],
)
def test_deadline_of_each_clock(
    kind: ClockKind, urgency: str, start: str, expected: str, statutory: str | None
) -> None:
    _, deadline = deadline_for(CALENDAR, POLICY, kind, urgency, at(start), statutory)
    assert deadline.at == at(expected)
    assert deadline.provisional is False


def test_a_deadline_in_a_year_without_official_calendar_is_provisional() -> None:
    _, deadline = deadline_for(CALENDAR, POLICY, C, "general", at("2026-12-28 10:00"))
    assert deadline.provisional is True
    assert deadline.at == at("2027-01-07 10:00")  # skips New Year's Day 2027


def test_the_policy_version_in_force_at_the_start_decides() -> None:
    stricter = Policy(
        at("2026-06-01 00:00"),
        {
            **DEFAULT_POLICY,
            "periods": {
                **DEFAULT_POLICY["periods"],
                "acceptance": {"life_safety": "10m", "livelihood": "30m", "general": "1wd"},
            },
        },
    )
    versions = PolicyVersions([POLICY, stricter])
    before = versions.in_force(at("2026-05-31 23:59"))
    after = versions.in_force(at("2026-06-01 00:00"))
    assert deadline_for(CALENDAR, before, A, "life_safety", at("2026-05-31 23:59"))[1].at == at(
        "2026-06-01 00:14"
    )
    assert deadline_for(CALENDAR, after, A, "life_safety", at("2026-06-01 00:00"))[1].at == at(
        "2026-06-01 00:10"
    )


def test_clock_states_and_lateness() -> None:
    deadline = at("2026-03-02 10:00")
    assert clock_state(deadline, None, at("2026-03-02 09:59")) is ClockState.RUNNING
    assert clock_state(deadline, None, at("2026-03-02 10:00")) is ClockState.OVERDUE
    assert clock_state(deadline, at("2026-03-02 10:00"), at("2026-03-03")) is ClockState.MET
    assert clock_state(deadline, at("2026-03-02 10:01"), at("2026-03-03")) is ClockState.MET_LATE
    assert lateness_seconds(deadline, at("2026-03-02 10:01"), at("2026-03-09")) == 60
    assert lateness_seconds(deadline, None, at("2026-03-02 09:00")) == 0
