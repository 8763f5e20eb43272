"""The SLA service's API models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ClockPublic(BaseModel):
    kind: str
    round: int
    dispatch_no: int
    unit_id: str | None
    urgency: str
    period: str
    started_at: datetime
    deadline: datetime
    provisional: bool
    state: str
    stopped_at: datetime | None
    cancelled_at: datetime | None
    warned_at: datetime | None
    overdue_at: datetime | None
    escalation_level: int
    late_seconds: float
    extensions: int


class ExtensionRequest(BaseModel):
    """延期申请 (Art 12)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="why more time is needed")
    progress: str = Field(min_length=1, max_length=2000, description="工作进展 so far")
    measures: str = Field(min_length=1, max_length=2000, description="下一步措施")


class ExtensionApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    explanation_to_requester: str = Field(
        min_length=1,
        max_length=2000,
        description="what the requester was told: progress, measures and the new deadline",
    )


class ExtensionRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class ExtensionPublic(BaseModel):
    extension_id: str
    ticket_id: str
    unit_id: str
    reason: str
    progress: str
    measures: str
    requested_at: datetime
    requested_by: str
    state: str
    decided_by: str | None
    decided_at: datetime | None
    reject_reason: str | None
    explanation_to_requester: str | None
    period: str | None
    old_deadline: datetime
    new_deadline: datetime | None


class TicketClocks(BaseModel):
    ticket_id: str
    clocks: list[ClockPublic]
    extensions: list[ExtensionPublic]


class BoardEntry(BaseModel):
    ticket_id: str
    kind: str
    round: int
    unit_id: str | None
    district: str | None
    urgency: str
    deadline: datetime
    state: str
    warned_at: datetime | None
    overdue_at: datetime | None
    escalation_level: int
    late_seconds: float


class Board(BaseModel):
    data: list[BoardEntry]
    count: int


class PolicyVersion(BaseModel):
    effective_from: datetime
    settings: dict[str, Any]
    created_by: str


class PolicyPublic(BaseModel):
    in_force: PolicyVersion
    versions: list[PolicyVersion]


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: AwareDatetime = Field(description="applies to clocks started from then on")
    settings: dict[str, Any]


class CalendarDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    working: bool
    note: str | None = Field(default=None, max_length=100)


class CalendarChange(BaseModel):
    """Admin overrides for one year; ``complete`` = the whole year's official calendar has
    been entered (its deadlines stop being provisional)."""

    model_config = ConfigDict(extra="forbid")
    days: list[CalendarDayIn] = Field(default_factory=list, max_length=366)
    complete: bool = False


class CalendarDayPublic(BaseModel):
    date: date
    working: bool
    source: str  # override / official / entered / provisional
    note: str | None = None


class CalendarYear(BaseModel):
    year: int
    official: bool
    entered: bool
    provisional: bool
    days: list[CalendarDayPublic]
    recomputed_clocks: int | None = None


class CalendarStatus(BaseModel):
    missing_years: list[int]
    entered_years: list[int]
    overrides: int
