"""The SLA service's pure rules: which period each clock gets (RULES.md §4, Art 6, 9, 11),
the policy settings that hold those values, and a clock's state. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from shared.calendar import Deadline, Period, WorkingCalendar, shanghai_time
from shared.errors import IllegalTransition, InvalidInput
from shared.policy import REGULATION_IN_FORCE


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
DEFAULT_POLICY_EFFECTIVE_FROM = REGULATION_IN_FORCE  # the rules' own numbers, Art 31


# a period's text read once (a Period is immutable): every clock's start reads one
parse_period = lru_cache(maxsize=256)(Period.parse)


@dataclass(frozen=True)
class Policy:
    effective_from: datetime
    settings: dict[str, Any]

    def period(self, kind: ClockKind, urgency: str) -> Period:
        return parse_period(self.settings["periods"][kind.value][urgency])


def clock_period(
    policy: Policy, kind: ClockKind, urgency: str, statutory_period: str | None
) -> Period:
    # Art 11: a period set by law or regulation replaces the default completion period.
    if kind is ClockKind.COMPLETION and statutory_period:
        return parse_period(statutory_period)
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


# ---- warnings and escalation (RULES.md §4) ---------------------------------------------


def warning_at(started_at: datetime, deadline: datetime, fraction: float) -> datetime:
    """When ``fraction`` (default setting 75 %) of the period has elapsed, in wall-clock
    time between start and deadline."""
    return started_at + (deadline - started_at) * fraction


def second_escalation_at(calendar: WorkingCalendar, deadline: datetime, period: Period) -> datetime:
    """Level 2: overdue plus one more period, counted from the deadline."""
    return calendar.add(deadline, period).at


def next_due(
    *,
    deadline: datetime,
    warn_at: datetime | None,
    warned: bool,
    overdue: bool,
    escalate_at: datetime | None,
    level: int,
    stopped: bool,
) -> datetime | None:
    """The next instant the scanner must act on this clock, or None when it is done."""
    if stopped:
        return None
    if not overdue:
        if not warned and warn_at is not None and warn_at < deadline:
            return warn_at
        return deadline
    if level < 2 and escalate_at is not None:
        return escalate_at
    return None


# ---- extensions (Art 12) ---------------------------------------------------------------

NO_EXTENSION_TYPES = frozenset({"consultation", "suggestion"})


@dataclass(frozen=True)
class ExtensionContext:
    """What the eligibility rules look at."""

    clock_kind: str
    urgency: str
    ticket_type: str
    round: int
    deadline: datetime
    requests_so_far: int
    pending: bool
    stopped: bool


def check_extension_request(
    ctx: ExtensionContext,
    now: datetime,
    calendar: WorkingCalendar,
    max_requests: int,
) -> None:
    """Every Art 12 rule, each refusal naming it."""
    from shared.errors import IllegalTransition

    def refuse(detail: str, rule: str) -> None:
        raise IllegalTransition(detail, rule=rule)

    if ctx.clock_kind != ClockKind.COMPLETION or ctx.stopped:
        refuse("only a running completion clock can be extended", "Art 12: completion only")
    if ctx.urgency != "general":
        refuse(
            f"{ctx.urgency} tickets are never extended",
            "Art 12: only general-class tickets may be extended",
        )
    if ctx.ticket_type in NO_EXTENSION_TYPES:
        refuse(
            f"{ctx.ticket_type} tickets are never extended",
            "Art 12: consultation and suggestion tickets may not be extended",
        )
    if ctx.round > 1:
        refuse(
            "a re-handling round can never be extended",
            "Art 14: re-handling gets no extension",
        )
    if ctx.requests_so_far >= max_requests:
        refuse(
            f"this ticket has already had {ctx.requests_so_far} extension requests",
            f"Art 12: at most {max_requests} extension requests per ticket",
        )
    if ctx.pending:
        refuse("an extension request is already awaiting review", "Art 12: one request at a time")
    latest = calendar.subtract_working_days(ctx.deadline, 1).at
    if now > latest:
        refuse(
            f"requests must be made by {latest.isoformat()}, one working day before the "
            f"deadline {shanghai_time(ctx.deadline)}",
            "Art 12: at least 1 working day before the deadline",
        )


def extended_deadline(
    calendar: WorkingCalendar, current: datetime, period: Period, cap: Period
) -> tuple[datetime, bool]:
    """Art 12: the class's completion period (or the statutory one) added to the current
    deadline, capped (default setting 7 working days). Returns (deadline, provisional)."""
    asked = calendar.add(current, period)
    capped = calendar.add(current, cap)
    chosen = min(asked, capped, key=lambda d: d.at)
    return chosen.at, chosen.provisional


def policy_settings_errors(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for every problem in a proposed policy document."""
    errors: list[tuple[str, str]] = []
    periods = settings.get("periods")
    if not isinstance(periods, dict):
        return [("settings.periods", "required: dispatch/acceptance/completion per class")]
    for kind in ClockKind:
        for urgency in ("life_safety", "livelihood", "general"):
            value = periods.get(kind.value, {}).get(urgency)
            try:
                Period.parse(str(value))
            except ValueError:
                errors.append(
                    (f"settings.periods.{kind.value}.{urgency}", f"not a period: {value!r}")
                )
    fraction = settings.get("warning_fraction")
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        errors.append(("settings.warning_fraction", "must be a number between 0 and 1"))
    try:
        Period.parse(str(settings.get("extension_cap")))
    except ValueError:
        errors.append(("settings.extension_cap", "not a period"))
    max_requests = settings.get("max_extension_requests")
    if not isinstance(max_requests, int) or max_requests < 0:
        errors.append(("settings.max_extension_requests", "must be a whole number ≥ 0"))
    return errors


def check_explanation(
    *, state: str, decided_at: datetime | None, already: bool, explained_at: datetime, now: datetime
) -> None:
    """Art 12: 同意延期的，由承办单位向诉求人作出解释 — only an approved extension is
    explained, once, at a time between the approval and now."""
    if state != "approved":
        raise IllegalTransition(
            f"an extension that is {state} is not explained to the requester",
            rule="Art 12: the unit explains an approved extension",
        )
    if already:
        raise IllegalTransition(
            "the explanation to the requester is already recorded", rule="Art 12"
        )
    assert decided_at is not None
    if explained_at < decided_at or explained_at > now:
        raise InvalidInput(
            "explained_at",
            f"must lie between the approval ({shanghai_time(decided_at)}) "
            f"and now ({shanghai_time(now)})",
            rule="Art 12",
        )
