"""Dispatch's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.dispatch.domain.staff import Duty
from shared.calendar import PERIOD_DOC, Period
from shared.events import TicketType, Urgency


class ReplyCreate(BaseModel):
    """答复 (Art 13): every field is required."""

    model_config = ConfigDict(extra="forbid")
    policy_basis: str = Field(min_length=1, max_length=2000, description="政策依据")
    progress: str = Field(min_length=1, max_length=2000, description="工作进展")
    result: str = Field(min_length=1, max_length=2000, description="办理结果")
    contacted_at: AwareDatetime = Field(description="time the requester was contacted")
    process: str = Field(min_length=1, max_length=4000, description="办理过程")
    feedback: str = Field(min_length=1, max_length=2000, description="诉求人反馈")


class ManualDispatch(BaseModel):
    """派单 by hand, from the manual queue (Art 8 checks apply)."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str = Field(min_length=1, max_length=40)
    matter_code: str | None = Field(default=None, description="a corrected matter, if any")
    note: str | None = Field(default=None, max_length=2000)


class Referral(BaseModel):
    """Send a ticket to determination (职责界定, Art 8)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    kind: Literal["same_industry", "cross_industry"] | None = None
    candidate_unit_ids: list[str] = Field(default_factory=list, max_length=20)


class DeterminationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead_unit_id: str = Field(min_length=1, max_length=40, description="主办单位")
    co_unit_ids: list[str] = Field(default_factory=list, max_length=20, description="协办单位")
    reason: str = Field(max_length=2000, description="why (recorded with who and when)")
    matter_code: str | None = Field(default=None, description="a corrected matter, if any")


class PositionCreate(BaseModel):
    """One party's position in a joint determination (Art 8): the lead and co-units it
    proposes and why. Recording again replaces the party's earlier position."""

    model_config = ConfigDict(extra="forbid")
    lead_unit_id: str = Field(min_length=1, max_length=40, description="主办单位 proposed")
    co_unit_ids: list[str] = Field(default_factory=list, max_length=20, description="协办单位")
    opinion: str = Field(min_length=2, max_length=2000, description="研究意见")


class PositionPublic(BaseModel):
    ticket_id: str
    party: str = Field(description="govservice, agency or authority:<industry>")
    role: str
    lead_unit_id: str
    co_unit_ids: list[str]
    opinion: str
    recorded_by: str
    recorded_at: datetime


class PositionsPublic(BaseModel):
    """The positions recorded so far and the parties still to be heard for the units the
    department proposes (its own position first)."""

    data: list[PositionPublic]
    count: int
    missing: list[str]


class DeterminationPublic(BaseModel):
    id: int
    ticket_id: str
    kind: str | None
    candidate_unit_ids: list[str]
    referred_by: str
    referred_at: datetime
    referral_reason: str
    status: str
    lead_unit_id: str | None
    co_unit_ids: list[str] | None
    decided_by: str | None
    decided_role: str | None
    decided_at: datetime | None
    reason: str | None


class DeterminationsPublic(BaseModel):
    data: list[DeterminationPublic]
    count: int


class ReturnCreate(BaseModel):
    """退回 (Art 10): a reason and a basis, both required."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)
    basis: str = Field(default="", max_length=2000, description="法律法规、权责清单等依据")


class ReturnApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000)


class ReturnRejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class ReturnPublic(BaseModel):
    return_id: str = Field(description="a UUID, like extension, supervision and exemption ids")
    ticket_id: str
    unit_id: str
    dispatch_no: int
    reason: str
    basis: str
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None


class ReturnsPublic(BaseModel):
    data: list[ReturnPublic]
    count: int


class InputCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class InputPublic(BaseModel):
    id: int
    ticket_id: str
    unit_id: str
    round: int
    text: str
    created_by: str
    created_at: datetime


class ReplyPublic(BaseModel):
    round: int
    unit_id: str
    reply: dict[str, Any]
    completed_at: datetime


class AssignmentPublic(BaseModel):
    ticket_id: str
    state: str
    unit_id: str | None
    unit_name: str | None
    assignee: str | None = Field(default=None, description="the lead unit's staff member (Art 4)")
    co_unit_ids: list[str] = []
    matter_code: str
    district: str
    type: TicketType
    urgency: Urgency
    round: int
    dispatch_no: int
    determined: bool
    flagged: bool
    content: str | None = None
    address: str | None = None
    registered_at: datetime
    dispatched_at: datetime | None
    accepted_at: datetime | None
    completed_at: datetime | None
    dispatch_deadline: datetime | None = Field(
        default=None,
        description="派单时限 (Art 6): dispatch by then, counted from the registration; the SLA"
        " service's (sla.deadline_set), empty until it is known. Read-only.",
    )
    acceptance_deadline: datetime | None = None
    completion_deadline: datetime | None = None
    deadline_source: str | None = None
    reply: dict[str, object] | None
    note: str | None
    # Dispatch holds no requester data; a co-unit's view is the same (Art 28, 29).
    requester: None = None
    suggestion: dict[str, Any] | None = None
    returns: list[ReturnPublic] | None = None
    determinations: list[DeterminationPublic] | None = None
    inputs: list[InputPublic] | None = None
    replies: list[ReplyPublic] | None = None


class AssignmentsPublic(BaseModel):
    data: list[AssignmentPublic]
    count: int


class InboxItem(BaseModel):
    ticket_id: str
    state: str
    assignee: str | None = None
    role: Literal["lead", "co"]
    matter_code: str
    district: str
    type: TicketType
    urgency: Urgency
    round: int
    flagged: bool
    due_clock: str | None
    due_at: datetime | None
    dispatched_at: datetime | None
    accepted_at: datetime | None


class InboxPublic(BaseModel):
    unit_id: str
    counts: dict[str, int]
    data: list[InboxItem]
    count: int


class SuggestionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=4000)
    district: str = Field(min_length=6, max_length=12)


class SuggestionPublic(BaseModel):
    matter_code: str | None
    matter_name: str | None
    unit_id: str | None
    confidence: float
    threshold: float
    confident: bool
    matched: list[str]
    alternatives: list[dict[str, Any]]


# ---- catalog --------------------------------------------------------------------------


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=100)
    level: Literal["city", "district", "street"]
    industry: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)
    parent_id: str | None = Field(default=None, max_length=40)
    functional: bool = False
    active: bool = True


class UnitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    level: Literal["city", "district", "street"]
    industry: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)
    parent_id: str | None = Field(default=None, max_length=40)
    functional: bool = False
    active: bool = True


class UnitPublic(BaseModel):
    unit_id: str
    name: str
    level: str
    industry: str | None
    district: str | None
    parent_id: str | None
    functional: bool
    active: bool = True


class MatterFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    default_urgency: Urgency
    functional_only: bool = False
    statutory_period: str | None = Field(default=None, description="e.g. 10wd (Art 11)")
    anonymous_allowed: bool = False
    active: bool = True
    responsible: dict[str, str] = Field(
        default_factory=dict, description="district code → responsible unit"
    )

    @field_validator("statutory_period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None:
            Period.parse(value)
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if any(not k.strip() or len(k) > 40 for k in value):
            raise ValueError("keywords are non-empty and at most 40 characters")
        return value


class MatterIn(MatterFields):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z][A-Z0-9]*-[0-9A-Z]+$")


class MatterUpdate(MatterFields):
    effective_from: AwareDatetime | None = Field(
        default=None, description="when the change takes effect; now if omitted"
    )


class MatterPublic(BaseModel):
    code: str
    name: str
    keywords: list[str]
    default_urgency: Urgency
    functional_only: bool
    statutory_period: str | None = Field(default=None, description=PERIOD_DOC)
    anonymous_allowed: bool
    catalog_version: str
    active: bool = True
    version: int = 1
    effective_from: datetime | None = None
    responsible: dict[str, str] | None = None


class CatalogDocument(BaseModel):
    """The catalog as JSON, for export and import."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)
    effective_from: AwareDatetime | None = None
    units: list[UnitIn] = Field(default_factory=list)
    matters: list[MatterIn] = Field(default_factory=list)


class CatalogVersionPublic(BaseModel):
    id: int
    label: str
    kind: str
    effective_from: datetime
    created_by: str
    created_at: datetime
    applied_at: datetime | None
    units: int
    matters: int


class CatalogVersionsPublic(BaseModel):
    data: list[CatalogVersionPublic]
    count: int


class PolicyVersion(BaseModel):
    effective_from: AwareDatetime
    settings: dict[str, Any]


class PolicyPublic(BaseModel):
    in_force: PolicyVersion
    versions: list[PolicyVersion]


class StaffMemberIn(BaseModel):
    """One of the unit's responsible staff (专人, Art 4)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, description="their sign-in name")
    name: str = Field(min_length=1, max_length=100)
    duties: list[Duty] = Field(description="accept 受理, handle 办理, coordinate 协调, reply 回复")
    deputy: bool = Field(default=False, description="stands in for the responsible person")
    phone: str | None = Field(
        default=None,
        pattern=r"^1[3-9]\d{9}$",
        description="work mobile that the unit's notifications reach (SMS)",
    )


class StaffList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str | None = None
    staff: list[StaffMemberIn] = Field(max_length=200)


class AssigneeSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, description="a staff member who handles")
