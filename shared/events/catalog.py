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
