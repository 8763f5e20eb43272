"""The knowledge service's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.knowledge.domain import (
    EntryKind,
    EntryStatus,
    KnowledgeSettings,
    RequestAction,
    RequestStatus,
)
from shared.calendar import PERIOD_DOC
from shared.detectors import FindingKind

_TEXT = 20_000


class FaqItem(BaseModel):
    """A common question and its answer (常见问题解答, Art 16)."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=500)
    answer: str = Field(min_length=1, max_length=5000)


class EntryContent(BaseModel):
    """The elements Art 16 asks every entry to state."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=50_000)
    legal_basis: str | None = Field(
        default=None, max_length=5000, description="法律、法规、规章、规范性文件依据"
    )
    scope: str | None = Field(default=None, max_length=_TEXT, description="适用范围")
    applicable_subjects: str | None = Field(default=None, max_length=_TEXT, description="适用主体")
    conditions: str | None = Field(default=None, max_length=_TEXT, description="适用条件")
    related_entries: list[str] = Field(
        default_factory=list, max_length=50, description="关联关系: ids of related entries"
    )
    faq: list[FaqItem] = Field(default_factory=list, max_length=100, description="常见问题")
    matter_codes: list[str] = Field(
        default_factory=list, max_length=50, description="catalog matters the entry answers"
    )


class EntryCreate(EntryContent):
    kind: EntryKind
    unit_id: str | None = Field(
        default=None, description="owning unit; a unit user may only name its own"
    )
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    publish: bool = Field(default=True, description="false keeps it a draft")
    supersedes: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="entries of the same unit this one replaces once published",
    )


class EntryUpdate(BaseModel):
    """A revision: only the fields given change; every change is a new version."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=50_000)
    legal_basis: str | None = Field(default=None, max_length=5000)
    scope: str | None = Field(default=None, max_length=_TEXT)
    applicable_subjects: str | None = Field(default=None, max_length=_TEXT)
    conditions: str | None = Field(default=None, max_length=_TEXT)
    related_entries: list[str] | None = Field(default=None, max_length=50)
    faq: list[FaqItem] | None = Field(default=None, max_length=100)
    matter_codes: list[str] | None = Field(default=None, max_length=50)
    kind: EntryKind | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=1000, description="why it changed")


class EntryConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid_until: AwareDatetime | None = Field(
        default=None, description="new end of validity; the kind's cap from now if omitted"
    )
    note: str | None = Field(default=None, max_length=1000)


class EntryWithdraw(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


class EntryPublic(BaseModel):
    entry_id: str
    kind: EntryKind
    title: str
    body: str
    legal_basis: str | None
    scope: str | None = None
    applicable_subjects: str | None = None
    conditions: str | None = None
    related_entries: list[str] = []
    faq: list[FaqItem] = []
    matter_codes: list[str] = []
    supersedes: list[str] = []
    unit_id: str
    status: EntryStatus
    valid: bool = False
    version: int = 1
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    created_at: datetime
    created_by: str
    updated_at: datetime | None = None
    updated_by: str | None = None
    published_at: datetime | None = None
    confirmed_at: datetime | None = None
    reminded_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdrawn_reason: str | None = None
    expired_at: datetime | None = None
    superseded_by: str | None = None


class EntriesPublic(BaseModel):
    data: list[EntryPublic]
    count: int


class VersionSummary(BaseModel):
    version: int
    change: str
    changed_at: datetime
    changed_by: str
    changed_fields: list[str]
    note: str | None


class VersionPublic(VersionSummary):
    entry_id: str
    diff: dict[str, Any] = Field(description="field → [before, after]")
    snapshot: dict[str, Any] = Field(description="the whole entry after this change")


class VersionsPublic(BaseModel):
    data: list[VersionSummary]
    count: int


# ---- search ---------------------------------------------------------------------------


class SearchHit(BaseModel):
    entry_id: str
    kind: EntryKind
    title: str
    unit_id: str
    status: EntryStatus
    valid: bool
    valid_until: datetime
    matter_codes: list[str]
    score: float
    snippet: str


class SearchResults(BaseModel):
    data: list[SearchHit]
    count: int
    terms: list[str] = Field(description="the query's terms after word segmentation")


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000, description="the ticket's text")
    matter_code: str | None = Field(default=None, max_length=32)
    limit: int = Field(default=5, ge=1, le=20)


class Suggestion(SearchHit):
    answer: FaqItem | None = Field(
        default=None, description="the FAQ pair closest to the text, to answer on the spot"
    )


class Suggestions(BaseModel):
    data: list[Suggestion]
    count: int


class ReindexResult(BaseModel):
    entries: int
    postings: int
    seconds: float


# ---- update requests (Art 17) ---------------------------------------------------------


class UpdateRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str | None = Field(default=None, description="the unit asked; the entry's if omitted")
    entry_id: str | None = Field(default=None, description="absent when asking for a new entry")
    action: RequestAction
    reason: str = Field(min_length=1, max_length=2000)
    emergency: bool = Field(default=False, description="about an emergency: due in 1 day")


class UpdateRequestAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry_id: str = Field(description="the entry the unit changed")
    version: int | None = Field(default=None, ge=1, description="the version; latest if omitted")
    note: str | None = Field(default=None, max_length=2000)


class UpdateRequestPublic(BaseModel):
    request_id: str
    unit_id: str
    entry_id: str | None
    action: RequestAction
    reason: str
    emergency: bool
    requested_at: datetime
    requested_by: str
    period: str = Field(description=PERIOD_DOC)
    due_at: datetime
    provisional: bool
    status: RequestStatus
    overdue: bool
    answered_at: datetime | None
    answered_by: str | None
    answer_entry_id: str | None
    answer_version: int | None
    answer_note: str | None
    late: bool | None
    overdue_at: datetime | None


class UpdateRequestsPublic(BaseModel):
    data: list[UpdateRequestPublic]
    count: int


# ---- policy notices (Art 18) ----------------------------------------------------------


class PolicyNoticeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: str | None = None
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1, max_length=_TEXT, description="what changes")
    publication_at: AwareDatetime = Field(description="when the policy is made public")
    interpretation: str = Field(min_length=1, max_length=50_000, description="解读资料")
    answer_guide: str = Field(min_length=1, max_length=50_000, description="答复指南")
    training_offered: bool = Field(default=False, description="配合提供专题培训")
    entry_ids: list[str] = Field(default_factory=list, max_length=50)


class PolicyNoticePublic(BaseModel):
    notice_id: str
    unit_id: str
    title: str
    summary: str
    publication_at: datetime
    interpretation: str
    answer_guide: str
    training_offered: bool
    entry_ids: list[str]
    registered_at: datetime
    registered_by: str
    lead_hours: float = Field(
        description="hours between the notice and the publication (Art 18: at least 12)"
    )
    late: bool


class PolicyNoticesPublic(BaseModel):
    data: list[PolicyNoticePublic]
    count: int


class UnitNoticeRecord(BaseModel):
    unit_id: str
    notices: int
    late: int


class UnitNoticeRecords(BaseModel):
    data: list[UnitNoticeRecord]
    count: int


# ---- policy settings --------------------------------------------------------------------


class PolicyVersion(BaseModel):
    effective_from: datetime
    settings: KnowledgeSettings
    created_by: str


class PolicyPublic(BaseModel):
    in_force: PolicyVersion
    versions: list[PolicyVersion]


class PolicyVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: AwareDatetime
    settings: KnowledgeSettings


class ScreeningOverruleCreate(BaseModel):
    """An agency reviewer's ruling that a refused word is a false positive (Art 20)."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str = Field(min_length=1, max_length=40)
    kind: FindingKind
    word: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=2, max_length=2000)


class ScreeningOverrulePublic(BaseModel):
    overrule_id: str
    unit_id: str
    kind: FindingKind
    word: str
    reason: str
    decided_by: str
    decided_at: datetime


class ScreeningOverrulesPublic(BaseModel):
    data: list[ScreeningOverrulePublic]
    count: int


class CaseCreate(BaseModel):
    """A completed ticket marked as a typical or excellent case (Art 25, 30). Every text is
    anonymised when stored; ``names`` are people's names known to occur in it."""

    model_config = ConfigDict(extra="forbid")
    ticket_id: str = Field(min_length=1, max_length=32)
    kind: Literal["typical", "excellent"] = Field(description="典型案例 or 优秀案例")
    title: str = Field(min_length=2, max_length=200)
    request: str = Field(min_length=2, max_length=4000, description="诉求: what was asked")
    handling: str = Field(min_length=2, max_length=8000, description="办理过程")
    result: str = Field(min_length=2, max_length=4000, description="办理结果")
    comment: str | None = Field(default=None, max_length=4000, description="点评: the lesson")
    names: list[str] = Field(default_factory=list, max_length=50)


class CaseReview(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool
    note: str = Field(min_length=2, max_length=2000)


class CasePublic(BaseModel):
    case_id: str
    ticket_id: str | None = Field(description="withheld on the public page")
    kind: str
    title: str
    request: str
    handling: str
    result: str
    comment: str | None
    anonymised: dict[str, int] = Field(description="what anonymisation replaced, by kind")
    status: str = Field(description="draft → published, or returned by the reviewer")
    created_by: str | None
    created_at: datetime
    reviewed_by: str | None = None
    review_note: str | None = None
    published_at: datetime | None = None
    score: float | None = Field(default=None, description="search rank (BM25), when searched")


class CasesPublic(BaseModel):
    data: list[CasePublic]
    count: int
