"""The SLA service's tables (SQLAlchemy Core; the schema comes from the migrations)."""

from sqlalchemy import JSON, Boolean, Column, Date, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("urgency", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("district", String(12)),
    Column("unit_id", String(40)),
    Column("statutory_period", String(10)),
    Column("round", Integer, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
)

clocks = Table(
    "clocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("round", Integer, nullable=False),
    Column("dispatch_no", Integer, nullable=False),
    Column("unit_id", String(40)),
    Column("district", String(12)),
    Column("urgency", String(20), nullable=False),
    Column("period", String(10), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),  # an approved return restarts the clocks
    Column("overdue_at", UTCDateTime),
    Column("warn_at", UTCDateTime),
    Column("warned_at", UTCDateTime),
    Column("escalation_level", Integer, nullable=False),
    Column("escalate_at", UTCDateTime),  # level 2: overdue plus one more period
    Column("next_due_at", UTCDateTime),  # the scanner's next action on this clock
    Column("extensions", Integer, nullable=False),  # approved extensions applied
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", UTCDateTime, nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
)

extensions = Table(
    "extensions",
    metadata,
    Column("extension_id", String(36), primary_key=True),
    Column("ticket_id", String(32), nullable=False),
    Column("clock_id", Integer, nullable=False),
    Column("unit_id", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("progress", Text, nullable=False),
    Column("measures", Text, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
    Column("reject_reason", Text),
    Column("explanation_to_requester", Text),
    Column("period", String(10)),
    Column("old_deadline", UTCDateTime, nullable=False),
    Column("new_deadline", UTCDateTime),
    # Art 12: the unit's explanation to the requester after approval
    Column("explained_via", String(20)),
    Column("explained_at", UTCDateTime),
    Column("explanation", JSON),
    Column("explanation_recorded_by", String(64)),
    Column("explanation_recorded_at", UTCDateTime),
)

calendar_days = Table(
    "calendar_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("working", Boolean, nullable=False),
    Column("note", String(100)),
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

calendar_years = Table(
    "calendar_years",
    metadata,
    Column("year", Integer, primary_key=True),
    Column("entered_by", String(64), nullable=False),
    Column("entered_at", UTCDateTime, nullable=False),
)
