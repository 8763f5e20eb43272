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


@event
class KnowledgeUpdated(Event):
    """An entry's content or validity changed (a new version); the index follows."""

    TYPE = "knowledge.updated"
    entry_id: str
    unit_id: str
    version: int
    status: str
    changed_fields: list[str]
    valid_until: AwareDatetime
    updated_at: AwareDatetime


@event
class KnowledgeRenewed(Event):
    """The owner confirmed an entry is still right; validity runs on from the confirmation
    (Art 19)."""

    TYPE = "knowledge.renewed"
    entry_id: str
    unit_id: str
    version: int
    confirmed_at: AwareDatetime
    valid_until: AwareDatetime


@event
class KnowledgeExpiring(Event):
    """Reminder to the owner: validity ends soon (Art 19)."""

    TYPE = "knowledge.expiring"
    entry_id: str
    unit_id: str
    title: str
    valid_until: AwareDatetime
    reminded_at: AwareDatetime


@event
class KnowledgeExpired(Event):
    """Validity ended: the entry was withdrawn automatically (Art 19)."""

    TYPE = "knowledge.expired"
    entry_id: str
    unit_id: str
    title: str
    valid_until: AwareDatetime
    expired_at: AwareDatetime


@event
class KnowledgeWithdrawn(Event):
    TYPE = "knowledge.withdrawn"
    entry_id: str
    unit_id: str
    withdrawn_at: AwareDatetime
    withdrawn_by: str
    reason: str


@event
class KnowledgeSuperseded(Event):
    TYPE = "knowledge.superseded"
    entry_id: str
    unit_id: str
    superseded_by: str
    superseded_at: AwareDatetime


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
    requested_at: AwareDatetime
    due_at: AwareDatetime
    provisional: bool = False


@event
class KnowledgeRequestAnswered(Event):
    TYPE = "knowledge.request_answered"
    request_id: str
    unit_id: str
    entry_id: str
    entry_version: int
    answered_at: AwareDatetime
    due_at: AwareDatetime
    late: bool


@event
class KnowledgeRequestOverdue(Event):
    TYPE = "knowledge.request_overdue"
    request_id: str
    unit_id: str
    entry_id: str | None = None
    action: str
    emergency: bool
    due_at: AwareDatetime
    detected_at: AwareDatetime


@event
class PolicyNoticeRegistered(Event):
    """A unit announced a policy change before publishing it (Art 18); ``late`` when less
    than the setting (12 hours) ahead, which counts against the unit."""

    TYPE = "knowledge.policy_notice_registered"
    notice_id: str
    unit_id: str
    title: str
    publication_at: AwareDatetime
    registered_at: AwareDatetime
    lead_hours: float
    late: bool
