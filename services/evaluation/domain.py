"""Evaluation, supervision and monitoring rules (Art 14, 21-24, 27). No I/O here.

Revisits and re-handling, exemptions, unit scores, supervision addressing, hotspot
detection, and the versioned policy settings that hold every value the regulation leaves
open.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.calendar import Period, PeriodUnit
from shared.errors import IllegalTransition, InvalidInput

# ---- policy settings ------------------------------------------------------------------


class ScoreWeights(BaseModel):
    """Art 23: the composite's weights (any non-negative numbers; normalised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    on_time_acceptance: float = Field(ge=0)
    on_time_completion: float = Field(ge=0)
    satisfaction: float = Field(ge=0)
    resolution: float = Field(ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if sum(self.as_dict().values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return {
            "on_time_acceptance": self.on_time_acceptance,
            "on_time_completion": self.on_time_completion,
            "satisfaction": self.satisfaction,
            "resolution": self.resolution,
        }


class HotspotSettings(BaseModel):
    """Art 27: same matter, same district, ``threshold`` tickets within ``window``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window: str
    threshold: int = Field(ge=2)

    @field_validator("window")
    @classmethod
    def _calendar_time(cls, value: str) -> str:
        period = Period.parse(value)
        if period.unit is PeriodUnit.WORKING_DAYS:
            raise ValueError("a hotspot window is calendar time (m, h or d), not working days")
        return value

    @property
    def window_delta(self) -> timedelta:
        return _window_delta(self.window)


class PolicySettings(BaseModel):
    """Every value of RULES.md §8 and §10 the policy leaves open. Stored by effective date:
    a revision of the rules is a new version, not a code change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    revisit_due: str  # 回访 due after completion
    supervision_answer_due: str  # a supervised unit answers within this
    score_weights: ScoreWeights
    hotspot: HotspotSettings

    @field_validator("revisit_due", "supervision_answer_due")
    @classmethod
    def _period(cls, value: str) -> str:
        Period.parse(value)
        return value


DEFAULT_POLICY: dict[str, Any] = {
    "revisit_due": "2wd",  # RULES.md §8 default
    "supervision_answer_due": "2wd",
    "score_weights": {
        "on_time_acceptance": 0.2,
        "on_time_completion": 0.3,
        "satisfaction": 0.3,
        "resolution": 0.2,
    },
    "hotspot": {"window": "1h", "threshold": 10},  # RULES.md §10 default
}
DEFAULT_POLICY_EFFECTIVE_FROM = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 Shanghai


@dataclass(frozen=True)
class Policy:
    effective_from: datetime
    settings: PolicySettings
    created_by: str = ""


@lru_cache(maxsize=64)
def _window_delta(window: str) -> timedelta:
    """A hotspot window's length (read for every registration tallied: parsed once)."""
    return period_delta(Period.parse(window))


def period_delta(period: Period) -> timedelta:
    """A calendar-time period as a timedelta (working days have no fixed length)."""
    if period.unit is PeriodUnit.MINUTES:
        return timedelta(minutes=period.amount)
    if period.unit is PeriodUnit.HOURS:
        return timedelta(hours=period.amount)
    if period.unit is PeriodUnit.CALENDAR_DAYS:
        return timedelta(days=period.amount)
    raise ValueError(f"{period} has no fixed length")


# ---- revisits and re-handling (Art 14) ---------------------------------------------------


class Rating(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class RevisitState(StrEnum):
    OPEN = "open"  # waiting for the revisit call
    AWAITING_DECISION = "awaiting_decision"  # first rating dissatisfied: send back or close
    SENT_BACK = "sent_back"  # re-handling requested; round 2 opens on completion
    CLOSED = "closed"  # the rating is final
    NOT_REQUIRED = "not_required"  # praise / suggestion: closed without a rating


class Decision(StrEnum):
    SEND_BACK = "send_back"  # 退回再次办理
    CLOSE = "close"


# Art 14: praise and suggestion tickets are closed without a rating.
UNRATED_TYPES = frozenset({"praise", "suggestion"})
# Art 14: re-handling is limited to once, so a rating in this round is final.
FINAL_ROUND = 2


def initial_state(ticket_type: str) -> RevisitState:
    return RevisitState.NOT_REQUIRED if ticket_type in UNRATED_TYPES else RevisitState.OPEN


def check_can_rate(ticket_id: str, state: RevisitState) -> None:
    if state is RevisitState.NOT_REQUIRED:
        raise IllegalTransition(
            f"ticket {ticket_id} is a praise or suggestion and is closed without a rating",
            rule="Art 14: praise and suggestion tickets are not rated",
        )
    if state is not RevisitState.OPEN:
        raise IllegalTransition(f"ticket {ticket_id} has already been rated in this round")


def state_after_rating(round_: int, rating: Rating) -> RevisitState:
    # Art 14: a first "dissatisfied" waits for the agency's decision; the second is final.
    if rating is Rating.DISSATISFIED and round_ < FINAL_ROUND:
        return RevisitState.AWAITING_DECISION
    return RevisitState.CLOSED


def check_can_decide(ticket_id: str, round_: int, state: RevisitState) -> None:
    if state is RevisitState.SENT_BACK or round_ >= FINAL_ROUND:
        raise IllegalTransition(
            f"ticket {ticket_id} has already been sent back once; its rating is final",
            rule="Art 14: re-handling is limited to once",
        )
    if state is not RevisitState.AWAITING_DECISION:
        raise IllegalTransition(
            f"ticket {ticket_id} has no first dissatisfied rating awaiting a decision "
            f"(revisit is {state.value})",
            rule="Art 14: only a first dissatisfied rating can be sent back",
        )


# ---- exemptions (Art 24) ----------------------------------------------------------------


class ExemptionState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"  # the rating does not count against the unit
    REJECTED = "rejected"


def check_can_file_exemption(
    ticket_id: str, rating: str | None, existing: ExemptionState | None
) -> None:
    # Art 24: only a dissatisfied rating can be explained away.
    if rating != Rating.DISSATISFIED:
        raise IllegalTransition(
            f"ticket {ticket_id} has no dissatisfied rating to explain",
            rule="Art 24: an exemption answers a dissatisfied rating",
        )
    if existing is not None:
        raise IllegalTransition(
            f"an exemption for this rating of ticket {ticket_id} was already filed "
            f"({existing.value})",
            rule="Art 24: one explanation per rating",
        )


def check_can_decide_exemption(exemption_id: str, state: ExemptionState) -> None:
    if state is not ExemptionState.PENDING:
        raise IllegalTransition(f"exemption {exemption_id} was already {state.value}")


@dataclass(frozen=True)
class EvidenceLimits:
    max_files: int
    max_file_bytes: int
    content_types: frozenset[str]


def check_evidence_count(count: int, limits: EvidenceLimits) -> None:
    # Art 24: "书面说明和佐证材料" — an explanation needs at least one piece of evidence.
    if count == 0:
        raise InvalidInput("files", "at least one evidence file is required")
    if count > limits.max_files:
        raise InvalidInput("files", f"at most {limits.max_files} files")


def check_evidence_file(name: str, content_type: str, limits: EvidenceLimits) -> None:
    if not name.strip():
        raise InvalidInput("files", "every file needs a name")
    if content_type not in limits.content_types:
        allowed = ", ".join(sorted(limits.content_types))
        raise InvalidInput("files", f"{name}: type {content_type!r} is not allowed ({allowed})")


def check_evidence_size(name: str, size: int, limits: EvidenceLimits) -> None:
    if size > limits.max_file_bytes:
        raise InvalidInput("files", f"{name}: larger than {limits.max_file_bytes} bytes")
    if size == 0:
        raise InvalidInput("files", f"{name}: the file is empty")


# ---- supervision (Art 21) ----------------------------------------------------------------


class SupervisionKind(StrEnum):
    TICKET = "ticket"  # 工单督办
    WRITTEN = "written"  # 书面督办
    ONSITE = "onsite"  # 现场核查
    SPECIAL = "special"  # 专项督办


class SupervisionState(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


def addressee(
    kind: SupervisionKind, subject_unit_id: str | None, parent_id: str | None
) -> str | None:
    """Who must answer. Art 21 (逐级负责、分级办理): a written supervision goes to the
    supervised unit's parent; a unit without a parent answers for itself."""
    if kind is SupervisionKind.WRITTEN and parent_id:
        return parent_id
    return subject_unit_id


def supervision_kind_for_escalation(level: int) -> SupervisionKind:
    # RULES.md §4: level 1 → ticket supervision; level 2 and above → written supervision.
    return SupervisionKind.TICKET if level <= 1 else SupervisionKind.WRITTEN


def check_can_answer(supervision_id: str, state: SupervisionState) -> None:
    if state is not SupervisionState.OPEN:
        raise IllegalTransition(f"supervision {supervision_id} is {state.value}, not open")


def check_can_close(supervision_id: str, state: SupervisionState) -> None:
    if state is SupervisionState.CLOSED:
        raise IllegalTransition(f"supervision {supervision_id} is already closed")


# ---- hotspots (Art 27) ---------------------------------------------------------------------


class HotspotStep(StrEnum):
    NONE = "none"
    OPEN = "open"  # a new hotspot: emit monitor.hotspot once
    JOIN = "join"  # the ticket belongs to an active hotspot: no new event


def hotspot_step(
    active_until: datetime | None, registered_at: datetime, count_in_window: int, threshold: int
) -> HotspotStep:
    """Art 27: a ticket joins the active hotspot of its matter and district, or opens one
    when its window holds ``threshold`` tickets. A hotspot stays active until one window
    after its latest ticket, so one burst is reported once."""
    if active_until is not None and registered_at < active_until:
        return HotspotStep.JOIN
    if count_in_window >= threshold:
        return HotspotStep.OPEN
    return HotspotStep.NONE


def window_reaches_threshold(
    recent: Sequence[datetime],
    tallied: int,
    registered_at: datetime,
    window: timedelta,
    threshold: int,
) -> bool | None:
    """Whether the window ending at ``registered_at`` holds ``threshold`` tickets, from a
    track's counter (the latest registration times before this ticket, oldest first, and
    how many were ever tallied) instead of a re-read of every ticket in the window.

    ``None`` when the counter cannot tell: a ticket older than the newest one counted (it
    arrived late, from another partition), or fewer kept times than the threshold needs
    while older tickets exist (the threshold was raised). The caller counts then."""
    if recent and registered_at < recent[-1]:
        return None
    complete = tallied <= len(recent)
    if len(recent) < threshold - 1 and not complete:
        return None
    # of the latest threshold - 1 times (oldest first), those after the window's start
    latest = recent[-(threshold - 1) :]
    in_window = 1 + len(latest) - bisect_right(latest, registered_at - window)
    return in_window >= threshold


def first_full_window(
    times: Sequence[datetime], registered_at: datetime, window: timedelta, threshold: int
) -> datetime | None:
    """For a ticket heard late (after newer ones of its matter and district): the first
    ticket, at or after it, whose window now holds ``threshold`` tickets, counting the late
    one; ``None`` if none does. ``times`` are the stored registration times, in order.

    Heard in order, that later ticket would have opened the hotspot; heard late, the late
    ticket completes its window, so it opens the hotspot there."""
    for end in times:
        if end < registered_at:
            continue
        if end >= registered_at + window:
            break
        held = bisect_right(times, end) - bisect_right(times, end - window)
        if held >= threshold:
            return end
    return None


def burst_span(
    times: Sequence[datetime], opened_at: datetime, window: timedelta, newest: datetime | None
) -> tuple[int, int]:
    """The slice of ``times`` (registration times in order) a hotspot opened at
    ``opened_at`` holds: its window, and then each ticket already counted (registered up to
    ``newest``) that would have joined it, had it been heard after the opening one; each
    keeps the hotspot active one window longer."""
    start = bisect_right(times, opened_at - window)
    end = bisect_right(times, opened_at)
    active_until = opened_at + window
    while end < len(times) and times[end] < active_until and newest and times[end] <= newest:
        active_until = times[end] + window
        end += 1
    return start, end


def counted_recent(
    recent: Sequence[datetime], registered_at: datetime, threshold: int
) -> list[datetime]:
    """The counter after tallying ``registered_at``: at most ``threshold`` latest times."""
    return sorted([*recent, registered_at])[-max(threshold, 1) :]


# ---- unit scores (Art 23) ----------------------------------------------------------------


class Outcome(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    EXEMPTED = "exempted"  # Art 24: not counted
    RETURNED = "returned"  # handed back before acceptance (Art 10): not counted
    PENDING = "pending"  # no result yet: not counted


FIGURES = ("on_time_acceptance", "on_time_completion", "satisfaction", "resolution")


@dataclass(frozen=True)
class Handling:
    """One dispatch of a ticket to a unit (a returned ticket has several)."""

    ticket_id: str
    round: int
    dispatch_no: int
    unit_id: str
    district: str
    matter_code: str
    dispatched_at: datetime
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    returned: bool = False
    acceptance_overdue: bool = False
    completion_overdue: bool = False


@dataclass(frozen=True)
class FinalRating:
    """The rating that counts for a ticket: the final one (Art 14)."""

    ticket_id: str
    round: int
    unit_id: str
    district: str
    matter_code: str
    rating: Rating
    resolved: bool
    recorded_at: datetime
    exempted: bool = False


@dataclass(frozen=True)
class Counted:
    """One ticket's part in a figure, so every figure can be traced to its tickets."""

    ticket_id: str
    round: int
    outcome: Outcome
    counted: bool  # in the denominator
    favourable: bool  # in the numerator


@dataclass
class Figure:
    name: str
    entries: list[Counted] = field(default_factory=list)

    @property
    def numerator(self) -> int:
        return sum(1 for e in self.entries if e.counted and e.favourable)

    @property
    def denominator(self) -> int:
        return sum(1 for e in self.entries if e.counted)

    @property
    def rate(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def acceptance_outcome(h: Handling) -> Outcome:
    # A clock that got sla.overdue was late, accepted or not (Art 9).
    if h.acceptance_overdue:
        return Outcome.LATE
    if h.accepted_at is not None:
        return Outcome.ON_TIME
    # Art 10: an approved return before acceptance does not count for or against the unit.
    return Outcome.RETURNED if h.returned else Outcome.PENDING


def completion_outcome(h: Handling) -> Outcome:
    if h.completion_overdue:
        return Outcome.LATE
    return Outcome.ON_TIME if h.completed_at is not None else Outcome.PENDING


def satisfaction_outcome(r: FinalRating) -> Outcome:
    # Art 24: an accepted exemption removes the rating from the satisfaction rate.
    if r.exempted:
        return Outcome.EXEMPTED
    return Outcome(r.rating.value)


@dataclass(frozen=True)
class ReportingPeriod:
    """A half-open reporting period [start, end)."""

    start: datetime
    end: datetime

    def __contains__(self, t: datetime | None) -> bool:
        return t is not None and self.start <= t < self.end


@dataclass
class Scorecard:
    """Art 23 figures for one group (a unit, a district or a matter)."""

    key: str
    figures: dict[str, Figure] = field(
        default_factory=lambda: {name: Figure(name) for name in FIGURES}
    )
    composite: float | None = None

    def rate(self, name: str) -> float | None:
        return self.figures[name].rate


def composite_score(rates: dict[str, float | None], weights: ScoreWeights) -> float | None:
    """Art 23: weighted mean of the rates, in points (0-100). A figure without any ticket
    is left out and the other weights renormalised, so no data never reads as failure."""
    pairs = [(rates[name], w) for name, w in weights.as_dict().items() if rates[name] is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return round(100 * sum(r * w for r, w in pairs if r is not None) / total, 2)


def scorecards(
    handlings: Iterable[Handling],
    ratings: Iterable[FinalRating],
    period: ReportingPeriod,
    key: Callable[[Handling | FinalRating], str],
    weights: ScoreWeights,
) -> dict[str, Scorecard]:
    """Each group's figures for ``period``:

    - on-time acceptance: every dispatch made in the period (by ``dispatched_at``);
    - on-time completion: every acceptance made in the period (by ``accepted_at``);
    - satisfaction: final ratings recorded in the period, (satisfied + basically
      satisfied) / rated, an accepted exemption excluded;
    - resolution: final ratings recorded in the period, resolved / rated.
    """
    cards: dict[str, Scorecard] = {}

    def card(item: Handling | FinalRating) -> Scorecard:
        k = key(item)
        if k not in cards:
            cards[k] = Scorecard(k)
        return cards[k]

    for h in handlings:
        if h.dispatched_at in period:
            outcome = acceptance_outcome(h)
            counted = outcome in (Outcome.ON_TIME, Outcome.LATE)
            card(h).figures["on_time_acceptance"].entries.append(
                Counted(h.ticket_id, h.round, outcome, counted, outcome is Outcome.ON_TIME)
            )
        if h.accepted_at in period:
            outcome = completion_outcome(h)
            counted = outcome in (Outcome.ON_TIME, Outcome.LATE)
            card(h).figures["on_time_completion"].entries.append(
                Counted(h.ticket_id, h.round, outcome, counted, outcome is Outcome.ON_TIME)
            )
    for r in ratings:
        if r.recorded_at not in period:
            continue
        outcome = satisfaction_outcome(r)
        card(r).figures["satisfaction"].entries.append(
            Counted(
                r.ticket_id,
                r.round,
                outcome,
                outcome is not Outcome.EXEMPTED,
                outcome in (Outcome.SATISFIED, Outcome.BASICALLY_SATISFIED),
            )
        )
        card(r).figures["resolution"].entries.append(
            Counted(
                r.ticket_id,
                r.round,
                Outcome.RESOLVED if r.resolved else Outcome.UNRESOLVED,
                True,
                r.resolved,
            )
        )
    for c in cards.values():
        c.composite = composite_score({n: c.rate(n) for n in FIGURES}, weights)
    return cards


def ranking(cards: Iterable[Scorecard]) -> list[Scorecard]:
    """Best composite first; groups without any figure last; ties by satisfaction, key."""

    def order(c: Scorecard) -> tuple[int, float, float, str]:
        sat = c.rate("satisfaction")
        return (
            0 if c.composite is not None else 1,
            -(c.composite or 0.0),
            -(sat if sat is not None else -1.0),
            c.key,
        )

    return sorted(cards, key=order)
