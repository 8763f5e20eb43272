"""The evaluation service's API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.evaluation.domain import Rating


class RevisitRecord(BaseModel):
    """回访 result."""

    model_config = ConfigDict(extra="forbid")
    rating: Rating
    resolved: bool
    note: str | None = Field(default=None, max_length=2000)


class RevisitPublic(BaseModel):
    ticket_id: str
    round: int
    unit_id: str
    type: str
    state: str
    completed_at: datetime
    rating: Rating | None
    resolved: bool | None
    note: str | None
    recorded_at: datetime | None
    recorded_by: str | None
