"""The channels service's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.channels.domain import Scope
from shared.events import Channel, TicketType

CallRating = Literal["satisfied", "basically_satisfied", "dissatisfied"]


class WeChatConfig(BaseModel):
    """What the official account's 服务器配置 page holds."""

    model_config = ConfigDict(extra="forbid")
    app_id: str = Field(min_length=1, max_length=64, examples=["wx1234567890abcdef"])
    token: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9]+$")
    encoding_aes_key: str | None = Field(
        default=None,
        min_length=43,
        max_length=43,
        pattern=r"^[A-Za-z0-9]+$",
        description="安全模式 / 兼容模式; leave empty for 明文模式",
    )


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "呼叫中心 CTI", "scope": "cti"},
                {
                    "name": "天津12345 公众号",
                    "scope": "wechat",
                    "default_district": "120101",
                    "wechat": {"app_id": "wx1234567890abcdef", "token": "hotline12345"},
                },
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100)
    scope: Scope
    channel: Channel | None = Field(
        default=None, description="the channel its tickets come in on (fixed per scope)"
    )
    unit_id: str | None = Field(default=None, max_length=40, description="scope unit only")
    default_matter_code: str = Field(default="OTHER-001", max_length=32)
    default_district: str = Field(default="120101", pattern=r"^\d{6}$")
    default_type: TicketType = "consultation"
    wechat: WeChatConfig | None = None


class AccountPublic(BaseModel):
    account_id: str
    name: str
    scope: Scope
    channel: Channel | None
    unit_id: str | None
    key_prefix: str = Field(description="the key's first characters, to tell keys apart")
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    wechat_app_id: str | None = None
    wechat_server_path: str | None = Field(
        default=None, description="the URL path to enter as the official account's server URL"
    )


class AccountCreated(AccountPublic):
    api_key: str = Field(description="shown once: send as X-Api-Key")
    signing_secret: str = Field(description="shown once: signs webhook bodies (CTI)")


class AccountsPublic(BaseModel):
    data: list[AccountPublic]
    count: int


class ApiKeyCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(min_length=1, max_length=200)


class ApiKeyIdentity(BaseModel):
    account_id: str
    name: str
    role: str
    channel: Channel | None
    unit_id: str | None


# ---- the phone system --------------------------------------------------------------------

CallId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CallStarted(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"call_id": "c-20260302-0001", "caller": "13920001234"}]},
    )
    call_id: CallId
    caller: str = Field(min_length=3, max_length=20, description="the caller's number")


class CallAnswered(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"call_id": "c-1", "agent": "operator"}]}
    )
    call_id: CallId
    agent: str = Field(min_length=1, max_length=64, description="the operator's user name")


class CallEnded(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"call_id": "c-1", "ticket_id": "TJ20260302000001"}]},
    )
    call_id: CallId
    ticket_id: str | None = Field(default=None, max_length=32, description="if the CTI knows it")


class CallRated(BaseModel):
    """The IVR's key press after the call (Art 14 (1))."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"call_id": "c-1", "key": "1"}]}
    )
    call_id: CallId
    key: str = Field(min_length=1, max_length=2, description="1 满意 · 2 基本满意 · 3 不满意")
    ticket_id: str | None = Field(default=None, max_length=32)


class CallTicketLink(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ticket_id": "TJ20260302000001"}]}
    )
    ticket_id: str = Field(min_length=1, max_length=32)


class CallPublic(BaseModel):
    call_id: str
    caller: str
    started_at: datetime
    answered_at: datetime | None
    agent: str | None
    ended_at: datetime | None
    ticket_id: str | None
    rating: CallRating | None
    rated_at: datetime | None


class CallerHistory(BaseModel):
    """The caller's earlier tickets, as the operator's console shows them at answer."""

    call_id: str
    tickets: list[dict[str, Any]]
    count: int


# ---- outgoing webhooks -------------------------------------------------------------------


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://unit.example.cn/hotline/webhook",
                    "event_types": ["ticket.dispatched", "sla.*"],
                    "unit_id": "city-water",
                }
            ]
        },
    )
    url: str = Field(min_length=8, max_length=2000)
    event_types: list[Annotated[str, Field(max_length=60)]] = Field(min_length=1, max_length=50)
    unit_id: str | None = Field(
        default=None, max_length=40, description="only this unit's tickets (a unit: its own)"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        return value


class SubscriptionPublic(BaseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    unit_id: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None


class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(description="shown once: verifies X-Hotline-Signature")


class SubscriptionsPublic(BaseModel):
    data: list[SubscriptionPublic]
    count: int


DeliveryStatus = Literal["pending", "delivered", "dead"]


class DeliveryAttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    ticket_id: str | None
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    give_up_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[DeliveryAttemptPublic] = []


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int


# ---- notifications -----------------------------------------------------------------------

Medium = Literal["sms", "wechat"]
NotificationStatus = Literal["pending", "sent", "failed", "skipped"]


class NotificationPublic(BaseModel):
    notification_id: str
    event_id: str
    ticket_id: str | None
    purpose: str
    medium: Medium
    recipient: str
    text: str
    urgent: bool
    status: NotificationStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    last_status_code: int | None
    last_error: str | None


class NotificationsPublic(BaseModel):
    data: list[NotificationPublic]
    count: int


class UnitContacts(BaseModel):
    """Where a unit is told of new work orders, warnings and overdue tickets."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phones": ["13820001111"], "wechat_openids": []}]},
    )
    phones: list[Annotated[str, Field(pattern=r"^1[3-9]\d{9}$")]] = Field(
        default_factory=list, max_length=10
    )
    wechat_openids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=10
    )


class OptOut(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"medium": "sms", "recipient": "13920001234"}]},
    )
    medium: Medium
    recipient: str = Field(min_length=1, max_length=64)
