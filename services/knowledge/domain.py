"""Knowledge base rules (Art 15–20): kinds and their validity caps, the entry life cycle,
who sees and edits what, update-request deadlines, policy-notice lateness, and the policy
settings that hold the values the regulation leaves open. No I/O here.

Screening (Art 20) lives in ``screening.py`` and word segmentation in ``tokens.py``."""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.auth import Caller, Role
from shared.calendar import SHANGHAI, Deadline, Period, WorkingCalendar
from shared.detectors import TERM_KINDS, FindingKind
from shared.errors import Forbidden, IllegalTransition, InvalidInput
from shared.policy import REGULATION_IN_FORCE


class EntryKind(StrEnum):
    NORMATIVE_DOCUMENT = "normative_document"  # 规范性文件
    SERVICE_GUIDE = "service_guide"  # 办事指南
    ANSWER_SCRIPT = "answer_script"  # 答复口径
    INTERPRETATION = "interpretation"  # 业务解读
    OTHER = "other"  # 其他


# Art 19: the longest validity of each kind, in months.
VALIDITY_CAP_MONTHS: dict[EntryKind, int] = {
    EntryKind.NORMATIVE_DOCUMENT: 60,
    EntryKind.SERVICE_GUIDE: 12,
    EntryKind.ANSWER_SCRIPT: 6,
    EntryKind.INTERPRETATION: 12,
    EntryKind.OTHER: 12,
}


def add_months(t: datetime, months: int) -> datetime:
    """Same local day ``months`` later (clamped to the month's end), in Shanghai time."""
    local = t.astimezone(SHANGHAI)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def validity_cap(kind: EntryKind, counted_from: datetime) -> datetime:
    """The latest ``valid_until`` allowed for ``kind`` counted from ``counted_from`` (UTC)."""
    return add_months(counted_from, VALIDITY_CAP_MONTHS[kind]).astimezone(UTC)


def check_validity(
    kind: EntryKind,
    valid_from: datetime,
    valid_until: datetime,
    confirmed_at: datetime | None = None,
) -> None:
    """Art 19: ``valid_until`` within the kind's cap, counted from ``valid_from`` or from
    the last confirmation when there was one (a confirmation renews the entry)."""
    if valid_until <= valid_from:
        raise InvalidInput("valid_until", "must be after valid_from")
    cap = VALIDITY_CAP_MONTHS[kind]
    counted_from = max(valid_from, confirmed_at) if confirmed_at else valid_from
    if valid_until > add_months(counted_from, cap):
        raise InvalidInput(
            "valid_until",
            f"a {kind.value} entry is valid for at most {cap} months (Art 19)",
            cap_months=cap,
            rule="Art 19",
        )


def renewed_validity(
    kind: EntryKind, confirmed_at: datetime, requested_until: datetime | None
) -> datetime:
    """Art 19: a confirmation renews validity within the cap, counted from the confirmation.
    Without a requested date the entry gets the whole cap."""
    cap_until = validity_cap(kind, confirmed_at)
    if requested_until is None:
        return cap_until
    if requested_until <= confirmed_at:
        raise InvalidInput("valid_until", "a renewal must end after the confirmation")
    if requested_until > cap_until:
        cap = VALIDITY_CAP_MONTHS[kind]
        raise InvalidInput(
            "valid_until",
            f"a {kind.value} entry is renewed for at most {cap} months from the "
            f"confirmation (Art 19)",
            cap_months=cap,
            rule="Art 19",
        )
    return requested_until


# ---- life cycle ---------------------------------------------------------------------------


class EntryStatus(StrEnum):
    DRAFT = "draft"  # 草稿
    PUBLISHED = "published"  # 已发布
    WITHDRAWN = "withdrawn"  # 已撤销
    EXPIRED = "expired"  # 已到期 (withdrawn automatically at valid_until, Art 19)
    SUPERSEDED = "superseded"  # 已被替代


class EntryAction(StrEnum):
    EDIT = "edit"
    PUBLISH = "publish"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    SUPERSEDE = "supersede"


# Which states each action starts from. An expired entry may be revised and published
# again (the owner renews it late); withdrawn and superseded entries are final.
ALLOWED_FROM: dict[EntryAction, frozenset[EntryStatus]] = {
    EntryAction.EDIT: frozenset({EntryStatus.DRAFT, EntryStatus.PUBLISHED, EntryStatus.EXPIRED}),
    EntryAction.PUBLISH: frozenset({EntryStatus.DRAFT, EntryStatus.EXPIRED}),
    EntryAction.CONFIRM: frozenset({EntryStatus.PUBLISHED}),
    EntryAction.WITHDRAW: frozenset({EntryStatus.DRAFT, EntryStatus.PUBLISHED}),
    EntryAction.EXPIRE: frozenset({EntryStatus.PUBLISHED}),
    EntryAction.SUPERSEDE: frozenset({EntryStatus.DRAFT, EntryStatus.PUBLISHED}),
}


def require_transition(status: EntryStatus, action: EntryAction) -> None:
    if status not in ALLOWED_FROM[action]:
        raise IllegalTransition(
            f"cannot {action.value} an entry that is {status.value}", rule="Art 19"
        )


def check_publishable(valid_until: datetime, now: datetime) -> None:
    if valid_until <= now:
        raise InvalidInput("valid_until", "already passed: renew the validity before publishing")


def is_valid(status: str, valid_from: datetime, valid_until: datetime, now: datetime) -> bool:
    """Valid = published and inside its validity window; only these reach operators."""
    return status == EntryStatus.PUBLISHED and valid_from <= now < valid_until


# ---- who may do what (Art 15, 20, 28, 29) -------------------------------------------------

EDITING_ROLES = (Role.UNIT, Role.AGENCY, Role.ADMIN)
READING_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT, Role.AUTHORITY)
# Who may look beyond valid, published entries (a unit only into its own entries).
WIDE_READERS = (Role.AGENCY, Role.ADMIN, Role.UNIT)


def owning_unit(caller: Caller, requested: str | None) -> str:
    """The unit a new record belongs to: a unit user's own; others name one."""
    if caller.role is Role.UNIT:
        # Art 15, 20: a unit maintains only its own knowledge.
        if requested not in (None, caller.unit_id):
            raise Forbidden("a unit may only act for itself")
        if not caller.unit_id:
            raise Forbidden("this unit account has no unit")
        return caller.unit_id
    if not requested:
        raise InvalidInput("unit_id", "required: the unit that owns it")
    return requested


def require_owner(caller: Caller, unit_id: str) -> None:
    """Art 15, 20: a unit acts only on its own unit's entries."""
    caller.require(*EDITING_ROLES)
    if caller.role is Role.UNIT and caller.unit_id != unit_id:
        raise Forbidden("this entry belongs to another unit")


def may_read(caller: Caller, unit_id: str, valid: bool) -> bool:
    """Valid entries are for everyone who answers or handles requests; anything else
    only for its own unit, the agency and the administrator (Art 20, RULES §11)."""
    if caller.role not in READING_ROLES:
        return False
    if valid:
        return True
    if caller.role is Role.UNIT:
        return caller.unit_id == unit_id
    return caller.role in (Role.AGENCY, Role.ADMIN)


# ---- update requests (Art 17) -------------------------------------------------------------


class RequestAction(StrEnum):
    ADD = "add"  # 增补
    CORRECT = "correct"  # 更正
    SUPPLEMENT = "supplement"  # 补充
    CONFIRM = "confirm"  # 确认
    WITHDRAW = "withdraw"  # 撤销
    ADJUST = "adjust"  # 调整


class RequestStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"


def request_due(
    calendar: WorkingCalendar, policy: Policy, requested_at: datetime, emergency: bool
) -> tuple[Period, Deadline]:
    """Art 17: 2 working days; 1 day regardless of working days for an emergency."""
    period = Period.parse(
        policy.settings.emergency_update_request_period
        if emergency
        else policy.settings.update_request_period
    )
    return period, calendar.add(requested_at, period)


def check_answer(requested_at: datetime, change_at: datetime, status: RequestStatus) -> None:
    """Art 17: the answer is a change the unit made after it was asked."""
    if status is not RequestStatus.OPEN:
        raise IllegalTransition("this update request is already answered", rule="Art 17")
    if change_at < requested_at:
        raise InvalidInput(
            "version", "the linked change was made before the request: link the new change"
        )


# ---- policy notices (Art 18) --------------------------------------------------------------


def notice_lead(registered_at: datetime, publication_at: datetime) -> timedelta:
    return publication_at - registered_at


def notice_is_late(lead: timedelta, policy: Policy) -> bool:
    """Art 18: a notice less than 12 hours before publication is accepted, flagged late."""
    return lead < timedelta(hours=policy.settings.policy_notice_lead_hours)


# ---- policy settings (versioned by effective date) ----------------------------------------

# Public numbers and addresses that appear in entries on purpose: hotline and service-desk
# phones, collection accounts, public mailboxes. Screening never refuses these.
DEFAULT_PUBLIC_CONTACTS = [
    "12345",
    "022-12345",
    "12315",
    "12333",
    "12369",
    "12320",
    "96655",
    "96199",
    "95598",
]
# Names of categories of information in legal text, not markings on this text (Art 20):
# "涉及国家秘密的不予公开" describes a rule; "秘密★1年" marks a document.
DEFAULT_CLASSIFICATION_EXEMPT_TERMS = ["国家秘密", "商业秘密", "商业机密", "技术秘密"]
# Art 20: wording that declares or reveals a commercial secret, a person's privacy, other
# sensitive information, or details whose publication could endanger security. Phrases,
# not bare category names, so that a rule ("涉及商业秘密的不予公开") is not refused; a
# reviewer overrules what is still a false positive (screening overrules).
DEFAULT_SENSITIVE_TERMS: dict[str, list[str]] = {
    "commercial_secret": [
        "企业商业秘密",
        "属于商业秘密",
        "系商业秘密",
        "含商业秘密",
        "商业秘密，请勿",
        "未公开的报价",
        "投标底价",
        "客户名单",
        "核心技术参数",
        "成本明细",
    ],
    "personal_privacy": [
        "属于个人隐私",
        "既往病史",
        "病历号",
        "犯罪记录为",
        "前科劣迹",
        "家庭住址：",
        "家庭住址为",
        "存款余额",
        "银行流水",
        "婚姻状况：",
    ],
    "sensitive": [
        "敏感信息，",
        "请勿外传",
        "严禁外传",
        "不得外传",
        "不宜公开",
        "暂不对外公开",
        "未经批准不得公开",
    ],
    "security": [
        "警力部署",
        "安保部署",
        "安保方案",
        "布防",
        "监控点位",
        "军事设施位置",
        "管理员密码",
        "登录密码：",
        "维稳方案",
        "核心机房位置",
    ],
}


class KnowledgeSettings(BaseModel):
    """The values RULES.md §9 marks as defaults, as one validated document."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reminder_days_before_expiry: int = Field(default=30, ge=1, le=365)
    update_request_period: str = "2wd"
    emergency_update_request_period: str = "1d"
    policy_notice_lead_hours: float = Field(default=12, gt=0, le=24 * 30)
    public_contacts: list[str] = Field(default_factory=lambda: list(DEFAULT_PUBLIC_CONTACTS))
    classification_exempt_terms: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CLASSIFICATION_EXEMPT_TERMS)
    )
    sensitive_terms: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SENSITIVE_TERMS.items()}
    )

    @field_validator("update_request_period", "emergency_update_request_period")
    @classmethod
    def _period(cls, value: str) -> str:
        Period.parse(value)
        return value

    @field_validator("classification_exempt_terms")
    @classmethod
    def _exempt_terms(cls, value: list[str]) -> list[str]:
        # An exemption may only widen a marking into a longer category name.
        for term in value:
            if term in ("绝密", "机密", "秘密", "工作秘密", "内部"):
                raise ValueError(f"{term!r} is a marking itself and cannot be exempt")
        return value

    @field_validator("sensitive_terms")
    @classmethod
    def _sensitive_terms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        kinds = {k.value for k in TERM_KINDS}
        for kind, words in value.items():
            if kind not in kinds:
                raise ValueError(f"{kind!r} is not one of {sorted(kinds)}")
            if any(not w.strip() for w in words):
                raise ValueError(f"{kind}: a term may not be empty")
        return value


DEFAULT_SETTINGS = KnowledgeSettings()
DEFAULT_POLICY_EFFECTIVE_FROM = REGULATION_IN_FORCE  # the rules' own numbers, Art 31


@dataclass(frozen=True)
class Policy:
    effective_from: datetime
    settings: KnowledgeSettings
    created_by: str = ""

    @classmethod
    def from_row(cls, effective_from: datetime, raw: dict[str, Any], created_by: str) -> Policy:
        return cls(effective_from, KnowledgeSettings.model_validate(raw), created_by)


DEFAULT_POLICY = Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_SETTINGS, "default")


def remind_at(valid_until: datetime, policy: Policy) -> datetime:
    """Art 19: the owner is reminded this long before validity ends."""
    return valid_until - timedelta(days=policy.settings.reminder_days_before_expiry)


# Art 20: a reviewer may overrule a term or marking finding; personal information is never
# overruled (a public number belongs in the ``public_contacts`` setting instead).
OVERRULABLE_KINDS = frozenset({FindingKind.CLASSIFICATION_MARKING, *TERM_KINDS})


def check_overrulable(kind: FindingKind) -> None:
    if kind not in OVERRULABLE_KINDS:
        raise InvalidInput(
            "kind",
            f"{kind.value} is personal information and cannot be overruled; a public "
            "number or mailbox belongs in the public_contacts setting (Art 20)",
            rule="Art 20",
        )
