"""The knowledge service's API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.knowledge.domain import EntryKind


class EntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: EntryKind
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=50_000)
    legal_basis: str | None = Field(default=None, max_length=5000)
    unit_id: str | None = Field(
        default=None, description="owning unit; a unit user may only name its own"
    )
    valid_from: AwareDatetime
    valid_until: AwareDatetime


class EntryPublic(BaseModel):
    entry_id: str
    kind: EntryKind
    title: str
    body: str
    legal_basis: str | None
    unit_id: str
    status: str
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    created_at: datetime
    created_by: str
