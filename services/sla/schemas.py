"""The SLA service's API models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.calendar import PERIOD_DOC


class ClockPublic(BaseModel):
    kind: str
    round: int
    dispatch_no: int
    unit_id: str | None
    urgency: str
    period: str = Field(description=PERIOD_DOC)
    started_at: datetime
    deadline: datetime
    provisional: bool
    state: str
    stopped_at: datetime | None
    cancelled_at: datetime | None
    warned_at: datetime | None
    overdue_at: datetime | None
    escalation_level: int
    late_seconds: float = Field(
        description="how late, in seconds of calendar time (0 when on time)"
    )
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
        default="",
        max_length=2000,
        description="the agency's note on approval (optional); the unit itself explains the "
        "extension to the requester afterwards (POST /extensions/{id}/explanation, Art 12)",
    )


class ExtensionExplanation(BaseModel):
    """承办单位向诉求人作出解释 (Art 12): how and when the unit told the requester, and what
    it said about progress and measures; the new deadline is the approved one."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["phone", "sms", "visit", "wechat", "letter"] = Field(
        description="how the requester was told"
    )
    explained_at: AwareDatetime = Field(description="when: after the approval, not in the future")
    progress: str = Field(min_length=1, max_length=2000, description="办理进度 as told")
    measures: str = Field(min_length=1, max_length=2000, description="解决措施 as told")
    content: str = Field(min_length=1, max_length=4000, description="what was said, in full")


class ExplanationPublic(BaseModel):
    channel: str
    explained_at: datetime
    progress: str
    measures: str
    content: str
    new_deadline: datetime
    recorded_by: str
    recorded_at: datetime


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
    period: str | None = Field(default=None, description=PERIOD_DOC)
    old_deadline: datetime
    new_deadline: datetime | None
    explanation: ExplanationPublic | None = None


class ExtensionsPublic(BaseModel):
    data: list[ExtensionPublic]
    count: int


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
    late_seconds: float = Field(
        description="how late, in seconds of calendar time (0 when on time)"
    )


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


class CalendarNotice(BaseModel):
    """The State Council's holiday notice for a year, pasted as published
    (国务院办公厅关于20XX年部分节假日安排的通知). ``confirm=false`` shows the year as read;
    ``confirm=true`` enters it and recomputes the provisional deadlines."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=20, max_length=20_000)
    confirm: bool = False


class NoticeDay(BaseModel):
    date: date
    working: bool
    holiday: str | None = Field(default=None, description="the holiday a changed day is for")
    changed: bool = Field(description="the notice changes this day from Monday–Friday")


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


class CalendarNoticePreview(BaseModel):
    year: int
    holidays: list[str]
    days_off: int = Field(description="days off the notice names (weekends inside included)")
    adjusted_working_days: list[date] = Field(description="调休: weekend days worked")
    months: dict[int, list[NoticeDay]] = Field(description="the year grid, month by month")
    outside_year: list[date] = Field(
        default_factory=list, description="days of another year the notice names (not entered)"
    )
    entered: CalendarYear | None = None
