"""Intake's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from services.intake.domain import DISTRICTS, calendar_window, normalise_phone
from shared.detectors import resident_id_is_valid
from shared.events import Channel, Reply, TicketType, Urgency
from shared.params import MAX_OFFSET

CallRating = Literal["satisfied", "basically_satisfied", "dissatisfied"]
# Hard ceilings of the API itself; the policy's (lower) limits are checked on registration.
MAX_ATTACHMENTS = 50
MAX_URL_LENGTH = 4096


def _district(code: str) -> str:
    if code not in DISTRICTS:
        raise ValueError(f"unknown district code {code!r}; use one of Tianjin's 16 (e.g. 120101)")
    return code


def _phone(value: str | None) -> str | None:
    return None if value is None else normalise_phone(value)


District = Annotated[str, AfterValidator(_district)]
Phone = Annotated[str, Field(max_length=20), AfterValidator(normalise_phone)]


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=50)
    phone: str | None = Field(default=None, max_length=20)
    id_number: str | None = Field(
        default=None,
        min_length=18,
        max_length=18,
        description="居民身份证号码, when the request needs it; sealed at rest, masked in lists",
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return _phone(value)

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not resident_id_is_valid(value):
            raise ValueError("not a resident ID number (18 characters, check digit)")
        return value.upper()


class Attachment(BaseModel):
    """A reference to a file kept elsewhere (a photo on the channel's storage); intake
    stores the link, never the file."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    name: str | None = Field(default=None, max_length=200)
    content_type: str | None = Field(default=None, max_length=100)

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        if any(ch.isspace() for ch in value):
            raise ValueError("must not contain whitespace")
        return value


class AnswerCreate(BaseModel):
    """The operator's answer to a consultation, given during the call (Art 6)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000, description="the answer given")
    knowledge_entry_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20, description="knowledge entries the answer used"
    )


class TicketCreate(BaseModel):
    """A request as a channel or an operator registers it (Art 5). With ``answer`` an
    operator closes a consultation on the spot (Art 6): it is never dispatched."""

    model_config = ConfigDict(extra="forbid")
    channel: Channel | None = Field(
        default=None,
        description="operators name it; a channel account's tickets always carry its own",
    )
    type: TicketType
    urgency: Urgency | None = Field(
        default=None, description="时限类别; the matter's default class when omitted"
    )
    matter_code: str = Field(min_length=1, max_length=32)
    district: District
    address: str | None = Field(default=None, max_length=200)
    content: str = Field(min_length=1, max_length=4000)
    requester: Requester = Field(default_factory=Requester)
    anonymous: bool = False
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    answer: AnswerCreate | None = None


class AnswerPublic(BaseModel):
    text: str
    knowledge_entry_ids: list[str]
    answered_at: datetime
    answered_by: str


class TicketPublic(BaseModel):
    ticket_id: str
    status: str
    channel: Channel
    type: TicketType
    urgency: Urgency
    matter_code: str
    district: str
    district_name: str
    address: str | None
    content: str
    requester_name: str | None
    requester_phone: str | None
    requester_id_number: str | None = None
    anonymous: bool
    flagged: bool
    flagged_keywords: list[str] = []
    registered_at: datetime
    attachments: list[Attachment] = []
    answer: AnswerPublic | None = None
    call_rating: CallRating | None = None
    reply: Reply | None = None
    completed_at: datetime | None = None


class DuplicateHint(BaseModel):
    """An earlier ticket with the same phone and matter inside the policy's window."""

    ticket_id: str
    status: str
    registered_at: datetime
    flagged: bool
    content: str


class TicketRegistration(TicketPublic):
    likely_duplicates: list[DuplicateHint] = []


class TicketsPublic(BaseModel):
    data: list[TicketPublic]
    count: int


TicketSort = Literal["-registered_at", "registered_at", "urgency"]


class TicketFilter(BaseModel):
    """Operators' list: every filter optional; flagged tickets always come first."""

    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(default=None, max_length=24)
    channel: Channel | None = None
    type: TicketType | None = None
    urgency: Urgency | None = Field(default=None, description="时限类别")
    district: District | None = None
    matter_code: str | None = Field(default=None, max_length=32)
    flagged: bool | None = None
    requester_phone: Phone | None = Field(
        default=None, description="a caller's earlier tickets; every such search is audited"
    )
    registered_from: AwareDatetime | None = None
    registered_to: AwareDatetime | None = Field(default=None, description="exclusive")
    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="words in the content (中文)"
    )
    sort: TicketSort = "-registered_at"
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)

    @field_validator("registered_to")
    @classmethod
    def _after_from(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("registered_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be after registered_from")
        return value


class CallRatingCreate(BaseModel):
    """话务服务评价 (Art 14 (1)). A citizen channel proves the ticket is theirs with the
    phone it was filed with; an operator records the rating without it."""

    model_config = ConfigDict(extra="forbid")
    rating: CallRating
    phone: Phone | None = None


class CallRatingPublic(BaseModel):
    ticket_id: str
    rating: CallRating
    rated_at: datetime


class TicketLookup(BaseModel):
    """A citizen's own ticket: its number and the phone number it was filed with."""

    model_config = ConfigDict(extra="forbid")
    ticket_id: str = Field(min_length=1, max_length=32)
    phone: Phone


class TicketStatusPublic(BaseModel):
    """What a citizen sees of their ticket: where it is and the reply, nothing else."""

    ticket_id: str
    status: str
    status_label: str
    type: TicketType
    channel: Channel
    matter_code: str
    matter_name: str | None
    district_name: str
    registered_at: datetime
    status_changed_at: datetime
    answer: str | None = None
    answered_at: datetime | None = None
    reply: Reply | None = None
    completed_at: datetime | None = None


class MatterPublic(BaseModel):
    code: str
    name: str
    default_urgency: Urgency
    anonymous_allowed: bool


class AttachmentLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_count: int = Field(ge=0, le=MAX_ATTACHMENTS)
    max_url_length: int = Field(ge=16, le=MAX_URL_LENGTH)


Keyword = Annotated[str, Field(min_length=1, max_length=20, pattern=r"\S")]


class PolicySettings(BaseModel):
    """Intake's policy settings: every value the rules leave open (RULES.md §10, §11)."""

    model_config = ConfigDict(extra="forbid")
    sensitive_keywords: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,39}$")],
        Annotated[list[Keyword], Field(max_length=500)],
    ] = Field(description="Art 27: category → keywords, e.g. self_harm → [自杀, 轻生]")
    duplicate_window: str = Field(description="calendar time: '24h', '30m', '2d'")
    attachments: AttachmentLimits

    @field_validator("duplicate_window")
    @classmethod
    def _window(cls, value: str) -> str:
        calendar_window(value)
        return value


class PolicyVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effective_from: AwareDatetime | None = Field(
        default=None, description="when the version takes effect; now when omitted"
    )
    settings: PolicySettings


class PolicyVersionPublic(BaseModel):
    effective_from: datetime
    settings: PolicySettings
    created_by: str


class PolicyPublic(BaseModel):
    in_force: PolicyVersionPublic
    versions: list[PolicyVersionPublic]


class RequesterReadPublic(BaseModel):
    ticket_id: str
    reader: str
    reader_role: str
    read_at: datetime
    purpose: str


class RequesterReadsPublic(BaseModel):
    data: list[RequesterReadPublic]
    count: int


class RequesterContact(BaseModel):
    """诉求人 contact details, for the reply (Art 13); an audited read."""

    ticket_id: str
    requester_name: str | None
    requester_phone: str | None
    requester_id_number: str | None = None
