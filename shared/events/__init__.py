"""Event contract: one envelope, one frozen Pydantic model per event type and version.

The JSON these produce is the contract between services (docs/events.md and
docs/events/<stream>.md). A consumer reads an event with ``parse_payload``; an older
version is upcast before it is used. Each stream's models live in their own module and
register themselves in ``EVENT_TYPES``; everything is re-exported here.
"""

from shared.events.base import (
    EVENT_TYPES,
    TOPIC_CATALOG,
    TOPIC_EVALUATION,
    TOPIC_KNOWLEDGE,
    TOPIC_SLA,
    TOPIC_TICKETS,
    TOPICS,
    UPCASTERS,
    Channel,
    ClockKind,
    Envelope,
    Event,
    TicketType,
    UnknownEvent,
    Urgency,
    event,
    parse_payload,
    topic_for,
    utcnow,
)
from shared.events.catalog import (
    MatterPublished,
    UnitPublished,
)
from shared.events.evaluation import (
    RevisitRecorded,
)
from shared.events.knowledge import (
    KnowledgePublished,
)
from shared.events.sla import (
    ClockWarning,
    DeadlineSet,
    Escalated,
    ExtensionApproved,
    ExtensionRejected,
    ExtensionRequested,
    Overdue,
)
from shared.events.tickets import (
    CallRated,
    DeterminationMade,
    RehandlingStarted,
    Reply,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
    TicketAccepted,
    TicketAnswered,
    TicketCompleted,
    TicketDispatched,
    TicketFlagged,
    TicketPendingDetermination,
    TicketRegistered,
)

__all__ = [
    "CallRated",
    "Channel",
    "ClockKind",
    "ClockWarning",
    "DeadlineSet",
    "DeterminationMade",
    "EVENT_TYPES",
    "Envelope",
    "Escalated",
    "Event",
    "ExtensionApproved",
    "ExtensionRejected",
    "ExtensionRequested",
    "KnowledgePublished",
    "MatterPublished",
    "Overdue",
    "RehandlingStarted",
    "Reply",
    "ReturnApproved",
    "ReturnRejected",
    "ReturnRequested",
    "RevisitRecorded",
    "TOPICS",
    "TOPIC_CATALOG",
    "TOPIC_EVALUATION",
    "TOPIC_KNOWLEDGE",
    "TOPIC_SLA",
    "TOPIC_TICKETS",
    "TicketAccepted",
    "TicketAnswered",
    "TicketCompleted",
    "TicketDispatched",
    "TicketFlagged",
    "TicketPendingDetermination",
    "TicketRegistered",
    "TicketType",
    "UPCASTERS",
    "UnitPublished",
    "UnknownEvent",
    "Urgency",
    "event",
    "parse_payload",
    "topic_for",
    "utcnow",
]
