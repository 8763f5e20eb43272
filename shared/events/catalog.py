"""Catalog events (hotline.catalog): dispatch → intake's read model."""

from __future__ import annotations

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
