"""Intake's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.intake.domain import DISTRICTS, normalise_phone
from shared.events import Channel, TicketType, Urgency


def _district(code: str) -> str:
    if code not in DISTRICTS:
        raise ValueError(f"unknown district code {code!r}; use one of Tianjin's 16 (e.g. 120101)")
    return code


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=50)
    phone: str | None = Field(default=None, max_length=20)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalise_phone(value)


class TicketCreate(BaseModel):
    """A request as a channel or an operator registers it (Art 5)."""

    model_config = ConfigDict(extra="forbid")
    channel: Channel
    type: TicketType
    urgency: Urgency | None = Field(
        default=None, description="时限类别; the matter's default class when omitted"
    )
    matter_code: str = Field(min_length=1, max_length=32)
    district: Annotated[str, AfterValidator(_district)]
    address: str | None = Field(default=None, max_length=200)
    content: str = Field(min_length=1, max_length=4000)
    requester: Requester = Field(default_factory=Requester)
    anonymous: bool = False


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
    anonymous: bool
    flagged: bool
    registered_at: datetime


class TicketsPublic(BaseModel):
    data: list[TicketPublic]
    count: int


class MatterPublic(BaseModel):
    code: str
    name: str
    default_urgency: Urgency
    anonymous_allowed: bool
