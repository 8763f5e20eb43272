"""Catalog events (hotline.catalog): dispatch → intake's read model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import (
    Event,
    Urgency,
    event,
)


@event
class MatterPublished(Event):
    TYPE = "catalog.matter_published"
    code: str
    name: str
    default_urgency: Urgency
    anonymous_allowed: bool = False
    active: bool = True


@event
class UnitPublished(Event):
    """A handling unit as the catalog knows it, for other services' read models (the
    evaluation service follows ``parent_id`` for written supervision, Art 21)."""

    TYPE = "catalog.unit_published"
    unit_id: str
    name: str
    level: str  # city / district / street
    industry: str | None = None
    district: str | None = None
    parent_id: str | None = None
    functional: bool = False


class StaffContact(BaseModel):
    """One of a unit's named responsible staff (专人, Art 4) and the work phone they are
    reached on."""

    model_config = ConfigDict(frozen=True)
    username: str
    name: str
    duties: list[str]  # accept 受理, handle 办理, coordinate 协调, reply 回复
    deputy: bool = False
    phone: str | None = None


@event
class UnitStaffPublished(Event):
    """A unit named (or renamed) its responsible staff; the whole list, replacing the last.
    The channels service notifies them of the unit's work orders, warnings and overdue
    tickets (Art 4: 专人)."""

    TYPE = "catalog.unit_staff_published"
    unit_id: str
    staff: list[StaffContact] = Field(default_factory=list)
