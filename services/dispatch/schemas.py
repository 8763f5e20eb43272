"""Dispatch's API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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


class AssignmentPublic(BaseModel):
    ticket_id: str
    state: str
    unit_id: str | None
    unit_name: str | None
    matter_code: str
    district: str
    type: TicketType
    urgency: Urgency
    round: int
    registered_at: datetime
    dispatched_at: datetime | None
    accepted_at: datetime | None
    completed_at: datetime | None
    reply: dict[str, object] | None
    note: str | None


class AssignmentsPublic(BaseModel):
    data: list[AssignmentPublic]
    count: int


class UnitPublic(BaseModel):
    unit_id: str
    name: str
    level: str
    industry: str | None
    district: str | None
    parent_id: str | None
    functional: bool


class MatterPublic(BaseModel):
    code: str
    name: str
    keywords: list[str]
    default_urgency: Urgency
    functional_only: bool
    statutory_period: str | None
    anonymous_allowed: bool
    catalog_version: str
