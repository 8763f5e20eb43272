"""The SLA service's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ClockPublic(BaseModel):
    kind: str
    round: int
    unit_id: str | None
    urgency: str
    period: str
    started_at: datetime
    deadline: datetime
    provisional: bool
    state: str
    stopped_at: datetime | None
    overdue_at: datetime | None
    late_seconds: float


class TicketClocks(BaseModel):
    ticket_id: str
    clocks: list[ClockPublic]


class PolicyVersion(BaseModel):
    effective_from: datetime
    settings: dict[str, Any]
    created_by: str


class PolicyPublic(BaseModel):
    in_force: PolicyVersion
    versions: list[PolicyVersion]
