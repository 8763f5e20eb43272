"""The evaluation service's API models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.evaluation.domain import (
    Decision,
    ExemptionState,
    PolicySettings,
    Rating,
    SupervisionKind,
)

# ---- revisits -----------------------------------------------------------------------------


class RevisitRecord(BaseModel):
    """回访 result."""

    model_config = ConfigDict(extra="forbid")
    rating: Rating
    resolved: bool
    note: str | None = Field(default=None, max_length=2000)


class RevisitDecision(BaseModel):
    """The agency's decision on a first dissatisfied rating (Art 14)."""

    model_config = ConfigDict(extra="forbid")
    decision: Decision
    reason: str = Field(min_length=1, max_length=2000)


class ExemptionBrief(BaseModel):
    exemption_id: str
    state: ExemptionState
    decision_reason: str | None


class ExtensionExplained(BaseModel):
    """An approved extension and what the unit told the requester (Art 12); the
    explanation fields are null while the unit has not recorded it."""

    extension_id: str
    approved_at: datetime
    old_deadline: datetime
    new_deadline: datetime
    explained_via: str | None = None
    explained_at: datetime | None = None
    progress: str | None = None
    measures: str | None = None
    content: str | None = None


class RevisitPublic(BaseModel):
    ticket_id: str
    round: int
    unit_id: str
    type: str
    state: str
    completed_at: datetime
    due_at: datetime | None = None
    overdue: bool = False
    rating: Rating | None
    resolved: bool | None
    note: str | None
    recorded_at: datetime | None
    recorded_by: str | None
    decision: Decision | None = None
    decision_reason: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    closed_at: datetime | None = None
    # Art 24: an accepted exemption takes this rating out of the unit's satisfaction rate;
    # null while the rating is not final
    exemption: ExemptionBrief | None = None
    counted_in_satisfaction: bool | None = None
    # Art 12: the ticket's approved extensions and the unit's explanation to the requester
    extensions: list[ExtensionExplained] = []


class RevisitsPublic(BaseModel):
    data: list[RevisitPublic]
    count: int


# ---- exemptions ---------------------------------------------------------------------------


class EvidenceFilePublic(BaseModel):
    file_id: str
    filename: str
    content_type: str
    size: int
    sha256: str


class ExemptionPublic(BaseModel):
    exemption_id: str
    ticket_id: str
    round: int
    unit_id: str
    explanation: str
    state: ExemptionState
    filed_by: str
    filed_at: datetime
    decision_reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    files: list[EvidenceFilePublic]


class ExemptionsPublic(BaseModel):
    data: list[ExemptionPublic]
    count: int


class ExemptionDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["accepted", "rejected"]
    reason: str = Field(min_length=1, max_length=2000)


# ---- scores ---------------------------------------------------------------------------------


class CountedTicket(BaseModel):
    ticket_id: str
    round: int
    outcome: str
    counted: bool
    favourable: bool


class FigurePublic(BaseModel):
    numerator: int
    denominator: int
    rate: float | None
    # ?explain=true: every ticket the figure looked at, and whether and how it counted
    tickets: list[CountedTicket] | None = None


class UnitScorePublic(BaseModel):
    rank: int | None
    unit_id: str
    unit_name: str | None
    on_time_acceptance: FigurePublic
    on_time_completion: FigurePublic
    satisfaction: FigurePublic
    resolution: FigurePublic
    exempted: int  # ratings taken out of the satisfaction rate (Art 24)
    composite: float | None


class UnitScoresPublic(BaseModel):
    period_from: date
    period_to: date
    weights: dict[str, float]
    data: list[UnitScorePublic]
    count: int


class RatesRow(BaseModel):
    """The "three rates" (三率) of one unit, district or matter."""

    key: str
    name: str | None
    response: FigurePublic  # on-time acceptance
    resolution: FigurePublic
    satisfaction: FigurePublic


class RatesPublic(BaseModel):
    by: Literal["unit", "district", "matter"]
    period_from: date
    period_to: date
    data: list[RatesRow]
    count: int


# ---- supervision ------------------------------------------------------------------------------


class SupervisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: SupervisionKind
    ticket_id: str | None = Field(default=None, max_length=32)
    unit_id: str | None = Field(default=None, max_length=40)  # the supervised unit
    reason: str = Field(min_length=1, max_length=4000)


class SupervisionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str = Field(min_length=1, max_length=4000)


class SupervisionClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)


class SupervisionPublic(BaseModel):
    supervision_id: str
    kind: SupervisionKind
    ticket_id: str | None
    subject_unit_id: str | None
    unit_id: str | None
    unit_name: str | None = None
    source: str
    reason: str
    opened_by: str
    opened_at: datetime
    due_at: datetime
    overdue: bool
    state: str
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None
    close_note: str | None
    closed_by: str | None
    closed_at: datetime | None


class SupervisionsPublic(BaseModel):
    data: list[SupervisionPublic]
    count: int


# ---- monitoring -------------------------------------------------------------------------------


class HotspotPublic(BaseModel):
    hotspot_id: str
    matter_code: str
    district: str
    window: str
    threshold: int
    ticket_count: int
    first_registered_at: datetime
    last_registered_at: datetime
    active_until: datetime
    active: bool
    detected_at: datetime
    ticket_ids: list[str]


class HotspotsPublic(BaseModel):
    data: list[HotspotPublic]
    count: int


class FlaggedTicketPublic(BaseModel):
    ticket_id: str
    flagged_at: datetime | None
    keywords: list[str]
    matter_code: str | None
    district: str | None
    type: str | None
    state: str
    unit_id: str | None
    registered_at: datetime | None


class FlaggedTicketsPublic(BaseModel):
    data: list[FlaggedTicketPublic]
    count: int


# ---- social supervisors (Art 22) -----------------------------------------------------------


class CountRow(BaseModel):
    key: str
    name: str | None = None
    count: int


class PublicStatistics(BaseModel):
    """Anonymised: counts and rates only, never a requester's name, phone or address."""

    period_from: date
    period_to: date
    tickets_registered: int
    by_type: list[CountRow]
    by_district: list[CountRow]
    by_matter: list[CountRow]
    units: list[RatesRow]
    active_hotspots: int
    open_supervisions: int


class OpinionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=4000)


class OpinionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str = Field(min_length=1, max_length=4000)


class OpinionPublic(BaseModel):
    opinion_id: str
    submitted_by: str
    subject: str
    body: str
    submitted_at: datetime
    state: str
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None


class OpinionsPublic(BaseModel):
    data: list[OpinionPublic]
    count: int


# ---- policy ---------------------------------------------------------------------------------


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: AwareDatetime
    settings: PolicySettings


class PolicyVersion(BaseModel):
    effective_from: datetime
    settings: PolicySettings
    created_by: str


class PolicyPublic(BaseModel):
    in_force: PolicyVersion
    versions: list[PolicyVersion]


class ScoreSignoffCreate(BaseModel):
    """Art 23: the department signs off a closed period's unit evaluation."""

    model_config = ConfigDict(extra="forbid")
    period_from: date
    period_to: date
    note: str | None = Field(default=None, max_length=2000)


class ScoreSignoffPublic(BaseModel):
    period_from: date
    period_to: date
    ranking: list[dict[str, Any]] = Field(description="the unit ranking as signed (frozen)")
    weights: dict[str, float]
    note: str | None
    signed_by: str
    signed_at: datetime


class ScoreSignoffsPublic(BaseModel):
    data: list[ScoreSignoffPublic]
    count: int


class SocialSupervisorCreate(BaseModel):
    """Art 22: a social supervisor appointed to the team (their user name signs in)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    affiliation: str | None = Field(default=None, max_length=200, description="e.g. 人大代表")
    term_until: date | None = None


class SocialSupervisorPublic(BaseModel):
    username: str
    name: str
    affiliation: str | None
    term_until: date | None
    active: bool
    appointed_by: str
    appointed_at: datetime
    dismissed_by: str | None = None
    dismissed_at: datetime | None = None


class SocialSupervisorsPublic(BaseModel):
    data: list[SocialSupervisorPublic]
    count: int
