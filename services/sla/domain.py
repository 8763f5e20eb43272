"""The SLA service's pure rules: which period each clock gets (RULES.md §4, Art 6, 9, 11),
the policy settings that hold those values, and a clock's state. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.calendar import Deadline, Period, WorkingCalendar


class ClockKind(StrEnum):
    DISPATCH = "dispatch"  # 派单
    ACCEPTANCE = "acceptance"  # 接单
    COMPLETION = "completion"  # 办结


# RULES.md §4: every value here is a default policy setting, not a constant; the service
# stores versions of it by effective date and uses the one in force when a clock starts.
DEFAULT_POLICY: dict[str, Any] = {
    "periods": {
        # Art 6: urgent classes are dispatched "immediately" (setting: 5 min).
        "dispatch": {"life_safety": "5m", "livelihood": "5m", "general": "24h"},
        # Art 9, 11: acceptance from dispatch.
        "acceptance": {"life_safety": "15m", "livelihood": "30m", "general": "1wd"},
        # Art 11: completion from acceptance.
        "completion": {"life_safety": "2h", "livelihood": "24h", "general": "7wd"},
    },
    "warning_fraction": 0.75,
    "extension_cap": "7wd",
    "max_extension_requests": 2,
}
DEFAULT_POLICY_EFFECTIVE_FROM = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 Shanghai


@dataclass(frozen=True)
class Policy:
    effective_from: datetime
    settings: dict[str, Any]

    def period(self, kind: ClockKind, urgency: str) -> Period:
        return Period.parse(self.settings["periods"][kind.value][urgency])


def policy_in_force(versions: list[Policy], at: datetime) -> Policy:
    """The newest version whose effective date is not after ``at``."""
    eligible = [v for v in versions if v.effective_from <= at]
    if not eligible:
        return min(versions, key=lambda v: v.effective_from)
    return max(eligible, key=lambda v: v.effective_from)


def clock_period(
    policy: Policy, kind: ClockKind, urgency: str, statutory_period: str | None
) -> Period:
    # Art 11: a period set by law or regulation replaces the default completion period.
    if kind is ClockKind.COMPLETION and statutory_period:
        return Period.parse(statutory_period)
    return policy.period(kind, urgency)


def deadline_for(
    calendar: WorkingCalendar,
    policy: Policy,
    kind: ClockKind,
    urgency: str,
    started_at: datetime,
    statutory_period: str | None = None,
) -> tuple[Period, Deadline]:
    period = clock_period(policy, kind, urgency, statutory_period)
    return period, calendar.add(started_at, period)


class ClockState(StrEnum):
    RUNNING = "running"
    OVERDUE = "overdue"  # deadline passed, still not met
    MET = "met"
    MET_LATE = "met_late"


def clock_state(deadline: datetime, stopped_at: datetime | None, now: datetime) -> ClockState:
    if stopped_at is None:
        return ClockState.OVERDUE if now >= deadline else ClockState.RUNNING
    return ClockState.MET if stopped_at <= deadline else ClockState.MET_LATE


def lateness_seconds(deadline: datetime, stopped_at: datetime | None, now: datetime) -> float:
    end = stopped_at or now
    return max((end - deadline).total_seconds(), 0.0)
