"""Knowledge events (hotline.knowledge)."""

from __future__ import annotations

from shared.events.base import (
    Event,
    EventTime,
    event,
)


@event
class KnowledgePublished(Event):
    TYPE = "knowledge.published"
    entry_id: str
    kind: str
    title: str
    unit_id: str
    valid_until: EventTime


@event
class KnowledgeUpdated(Event):
    """An entry's content or validity changed (a new version); the index follows."""

    TYPE = "knowledge.updated"
    entry_id: str
    unit_id: str
    version: int
    status: str
    changed_fields: list[str]
    valid_until: EventTime
    updated_at: EventTime


@event
class KnowledgeRenewed(Event):
    """The owner confirmed an entry is still right; validity runs on from the confirmation
    (Art 19)."""

    TYPE = "knowledge.renewed"
    entry_id: str
    unit_id: str
    version: int
    confirmed_at: EventTime
    valid_until: EventTime


@event
class KnowledgeExpiring(Event):
    """Reminder to the owner: validity ends soon (Art 19)."""

    TYPE = "knowledge.expiring"
    entry_id: str
    unit_id: str
    title: str
    valid_until: EventTime
    reminded_at: EventTime


@event
class KnowledgeExpired(Event):
    """Validity ended: the entry was withdrawn automatically (Art 19)."""

    TYPE = "knowledge.expired"
    entry_id: str
    unit_id: str
    title: str
    valid_until: EventTime
    expired_at: EventTime


@event
class KnowledgeWithdrawn(Event):
    TYPE = "knowledge.withdrawn"
    entry_id: str
    unit_id: str
    withdrawn_at: EventTime
    withdrawn_by: str
    reason: str


@event
class KnowledgeSuperseded(Event):
    TYPE = "knowledge.superseded"
    entry_id: str
    unit_id: str
    superseded_by: str
    superseded_at: EventTime


@event
class KnowledgeRequestCreated(Event):
    """The agency asked a unit to add, correct, supplement, confirm, withdraw or adjust
    knowledge (Art 17)."""

    TYPE = "knowledge.request_created"
    request_id: str
    unit_id: str
    entry_id: str | None = None
    action: str
    reason: str
    emergency: bool
    requested_at: EventTime
    due_at: EventTime
    provisional: bool = False


@event
class KnowledgeRequestAnswered(Event):
    TYPE = "knowledge.request_answered"
    request_id: str
    unit_id: str
    entry_id: str
    entry_version: int
    answered_at: EventTime
    due_at: EventTime
    late: bool


@event
class KnowledgeRequestOverdue(Event):
    TYPE = "knowledge.request_overdue"
    request_id: str
    unit_id: str
    entry_id: str | None = None
    action: str
    emergency: bool
    due_at: EventTime
    detected_at: EventTime


@event
class PolicyNoticeRegistered(Event):
    """A unit announced a policy change before publishing it (Art 18); ``late`` when less
    than the setting (12 hours) ahead, which counts against the unit."""

    TYPE = "knowledge.policy_notice_registered"
    notice_id: str
    unit_id: str
    title: str
    publication_at: EventTime
    registered_at: EventTime
    lead_hours: float
    late: bool
