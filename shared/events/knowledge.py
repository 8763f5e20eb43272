"""Knowledge events (hotline.knowledge)."""

from __future__ import annotations

from pydantic import AwareDatetime

from shared.events.base import (
    Event,
    event,
)


@event
class KnowledgePublished(Event):
    TYPE = "knowledge.published"
    entry_id: str
    kind: str
    title: str
    unit_id: str
    valid_until: AwareDatetime
