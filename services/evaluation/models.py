"""The evaluation service's tables (the schema comes from the migrations)."""

from sqlalchemy import JSON, Boolean, Column, Date, Float, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

# 回访: one per ticket and round (round 2 = after re-handling).
revisits = Table(
    "revisits",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("unit_id", String(40), nullable=False),
    Column("type", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("completed_at", UTCDateTime, nullable=False),
    Column("rating", String(30)),
    Column("resolved", Boolean),
    Column("note", Text),
    Column("recorded_at", UTCDateTime),
    Column("recorded_by", String(64)),
    Column("due_at", UTCDateTime),
    Column("decision", String(20)),
    Column("decision_reason", Text),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
)

# Read model of tickets, from ticket.* events. No requester name, phone or address is kept:
# what this service shows (statistics, flagged lists) is anonymous by construction.
tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("type", String(20)),
    Column("urgency", String(20)),
    Column("channel", String(20)),
    Column("matter_code", String(40)),
    Column("district", String(12)),
    Column("registered_at", UTCDateTime),
    Column("unit_id", String(40)),
    Column("round", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("flagged_at", UTCDateTime),
    Column("flag_keywords", JSON),
    Column("updated_at", UTCDateTime),
)

# One row per dispatch of a ticket to a unit (a returned ticket has several).
handlings = Table(
    "handlings",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("dispatch_no", Integer, primary_key=True),
    Column("unit_id", String(40), nullable=False),
    Column("matter_code", String(40), nullable=False),
    Column("district", String(12), nullable=False),
    Column("dispatched_at", UTCDateTime, nullable=False),
    Column("accepted_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("returned_at", UTCDateTime),
)

# The SLA clocks that went overdue, as sla.overdue reports them (the scores' late
# acceptances and completions); ``unit_key`` is '' for the dispatch clock, which has no
# unit. Rows from before 2026-12 also hold clocks sla.deadline_set reported, never late.
sla_clocks = Table(
    "sla_clocks",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("clock", String(20), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("unit_key", String(40), primary_key=True),
    Column("deadline", UTCDateTime),
    Column("overdue_at", UTCDateTime),
    Column("late_seconds", Float),
)

units = Table(
    "units",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("level", String(10), nullable=False),
    Column("industry", String(40)),
    Column("district", String(12)),
    Column("parent_id", String(40)),
    Column("functional", Boolean, nullable=False),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", UTCDateTime, nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

exemptions = Table(
    "exemptions",
    metadata,
    Column("exemption_id", String(36), primary_key=True),
    Column("ticket_id", String(32), nullable=False),
    Column("round", Integer, nullable=False),
    Column("unit_id", String(40), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("filed_by", String(64), nullable=False),
    Column("filed_at", UTCDateTime, nullable=False),
    Column("decision_reason", Text),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
)

exemption_files = Table(
    "exemption_files",
    metadata,
    Column("file_id", String(36), primary_key=True),
    Column("exemption_id", String(36), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("stored_as", String(300), nullable=False),  # relative to the files folder
)

supervisions = Table(
    "supervisions",
    metadata,
    Column("supervision_id", String(36), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("ticket_id", String(32)),
    Column("subject_unit_id", String(40)),
    Column("unit_id", String(40)),  # who answers
    Column("source", String(20), nullable=False),
    Column("escalation_key", String(120), unique=True),
    Column("reason", Text, nullable=False),
    Column("opened_by", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("state", String(20), nullable=False),
    Column("answer", Text),
    Column("answered_by", String(64)),
    Column("answered_at", UTCDateTime),
    Column("close_note", Text),
    Column("closed_by", String(64)),
    Column("closed_at", UTCDateTime),
)

hotspots = Table(
    "hotspots",
    metadata,
    Column("hotspot_id", String(36), primary_key=True),
    Column("matter_code", String(40), nullable=False),
    Column("district", String(12), nullable=False),
    Column("window", String(10), nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("first_registered_at", UTCDateTime, nullable=False),
    Column("last_registered_at", UTCDateTime, nullable=False),
    Column("active_until", UTCDateTime, nullable=False),
    Column("ticket_count", Integer, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False),
)

hotspot_tickets = Table(
    "hotspot_tickets",
    metadata,
    Column("hotspot_id", String(36), primary_key=True),
    Column("ticket_id", String(32), primary_key=True),
)

# One row per matter and district, locked while a ticket is tallied so that two consumers
# never open the same hotspot twice.
hotspot_tracks = Table(
    "hotspot_tracks",
    metadata,
    Column("matter_code", String(40), primary_key=True),
    Column("district", String(12), primary_key=True),
    Column("hotspot_id", String(36)),
    Column("active_until", UTCDateTime),
    # evaluation_0006: the latest registration times (ISO, oldest first, at most the
    # threshold) and how many tickets were ever tallied: the counter a new ticket is
    # judged by (services/evaluation/domain.py: window_count)
    Column("recent", JSON),
    Column("tallied", Integer, nullable=False, server_default="0"),
)

opinions = Table(
    "opinions",
    metadata,
    Column("opinion_id", String(36), primary_key=True),
    Column("submitted_by", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("state", String(20), nullable=False),
    Column("answer", Text),
    Column("answered_by", String(64)),
    Column("answered_at", UTCDateTime),
)

# Art 12: approved extensions and the unit's explanation to the requester, for the revisit.
extensions = Table(
    "extensions",
    metadata,
    Column("extension_id", String(36), primary_key=True),
    Column("ticket_id", String(32), nullable=False, index=True),
    Column("unit_id", String(40), nullable=False),
    Column("approved_at", UTCDateTime, nullable=False),
    Column("old_deadline", UTCDateTime, nullable=False),
    Column("new_deadline", UTCDateTime, nullable=False),
    Column("explained_via", String(20)),
    Column("explained_at", UTCDateTime),
    Column("progress", Text),
    Column("measures", Text),
    Column("content", Text),
)

# Art 23: a period's unit evaluation as signed off by the government-services department.
score_signoffs = Table(
    "score_signoffs",
    metadata,
    Column("period_from", Date, primary_key=True),
    Column("period_to", Date, primary_key=True),
    Column("ranking", JSON, nullable=False),
    Column("weights", JSON, nullable=False),
    Column("note", Text),
    Column("signed_by", String(64), nullable=False),
    Column("signed_at", UTCDateTime, nullable=False),
)

# Art 22: the social supervisor team the government-services department builds.
social_supervisors = Table(
    "social_supervisors",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("affiliation", String(200)),
    Column("term_until", Date),
    Column("active", Boolean, nullable=False),
    Column("appointed_by", String(64), nullable=False),
    Column("appointed_at", UTCDateTime, nullable=False),
    Column("dismissed_by", String(64)),
    Column("dismissed_at", UTCDateTime),
)
