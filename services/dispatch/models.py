"""Dispatch's tables (SQLAlchemy Core; the schema itself comes from the migrations)."""

from sqlalchemy import JSON, Boolean, Column, Computed, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

units = Table(
    "units",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("level", String(10), nullable=False),
    Column("industry", String(40)),
    Column("district", String(12)),
    Column("parent_id", String(40)),
    Column("functional", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", UTCDateTime),
)

matters = Table(
    "matters",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("keywords", JSON, nullable=False),
    Column("default_urgency", String(20), nullable=False),
    Column("functional_only", Boolean, nullable=False),
    Column("statutory_period", String(10)),
    Column("anonymous_allowed", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("catalog_version", String(64), nullable=False),
    Column("version", Integer, nullable=False),  # revision of this matter, +1 per change
    Column("effective_from", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("updated_by", String(64)),
)

matter_units = Table(
    "matter_units",
    metadata,
    Column("matter_code", String(32), primary_key=True),
    Column("district", String(12), primary_key=True),
    Column("unit_id", String(40), nullable=False),
)

# Versions of the catalog (派单目录, Art 7): a seed, an import or one admin edit, each with
# the date it takes effect; the scheduler applies a version when its date arrives.
catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("label", String(64), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    Column("effective_from", UTCDateTime, nullable=False),
    Column("content", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", UTCDateTime, nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
)

# The deadline of the clock now running on a work order, as the inbox orders by it: a column
# the database computes from the deadline columns (dispatch_0007), so no writer can miss it.
DUE_AT_SQL = (
    "CASE WHEN state = 'accepted' THEN completion_deadline"
    " WHEN state IN ('dispatched', 'return_review') THEN acceptance_deadline END"
)

assignments = Table(
    "assignments",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("matter_code", String(32), nullable=False),
    Column("district", String(12), nullable=False),
    Column("type", String(20), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("unit_id", String(40)),  # the lead unit (主办)
    Column("assignee", String(64)),  # Art 4: the lead unit's staff member handling it
    Column("state", String(30), nullable=False),
    Column("round", Integer, nullable=False),
    Column("dispatch_no", Integer, nullable=False),  # 0 until first dispatched
    Column("determined", Boolean, nullable=False),  # unit fixed by a determination (Art 10 (3))
    Column("flagged", Boolean, nullable=False),
    Column("statutory_period", String(10)),
    Column("content", Text),
    Column("address", Text),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Column("accepted_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    # Deadlines of the running clocks: the SLA service's (sla.deadline_set) when known,
    # otherwise computed from the policy setting (``deadline_source``).
    Column("dispatch_deadline", UTCDateTime),
    Column("acceptance_deadline", UTCDateTime),
    Column("completion_deadline", UTCDateTime),
    Column("deadline_source", String(10)),
    Column("due_at", UTCDateTime, Computed(DUE_AT_SQL)),  # dispatch_0007
    Column("suggestion", JSON),
    Column("reply", JSON),
    Column("note", Text),
)

# The SLA's dispatch deadline of a ticket whose registration dispatch has not heard of yet
# (sla.deadline_set and ticket.registered travel on different topics): the registration
# that opens the work order takes it into ``dispatch_deadline`` and removes it
# (dispatch_0009).
early_dispatch_deadlines = Table(
    "early_dispatch_deadlines",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("deadline", UTCDateTime, nullable=False),
)

co_units = Table(
    "co_units",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("unit_id", String(40), primary_key=True),
)

co_unit_inputs = Table(
    "co_unit_inputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), nullable=False),
    Column("unit_id", String(40), nullable=False),
    Column("round", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

returns = Table(
    "returns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("return_id", String(36), unique=True),  # public: a UUID, as other records
    Column("ticket_id", String(32), nullable=False),
    Column("unit_id", String(40), nullable=False),
    Column("dispatch_no", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("basis", Text, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("status", String(10), nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
    Column("decision_note", Text),
)

determinations = Table(
    "determinations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), nullable=False),
    Column("kind", String(20)),
    Column("candidate_unit_ids", JSON, nullable=False),
    Column("referred_by", String(64), nullable=False),
    Column("referred_at", UTCDateTime, nullable=False),
    Column("referral_reason", Text, nullable=False),
    Column("status", String(10), nullable=False),
    Column("lead_unit_id", String(40)),
    Column("co_unit_ids", JSON),
    Column("decided_by", String(64)),
    Column("decided_role", String(20)),
    Column("decided_at", UTCDateTime),
    Column("reason", Text),
)

# Art 8: each party's position in a joint (cross-industry) determination; one per party.
determination_positions = Table(
    "determination_positions",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("party", String(60), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("lead_unit_id", String(40), nullable=False),
    Column("co_unit_ids", JSON, nullable=False),
    Column("opinion", Text, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# Art 4: a unit's responsible staff (专人) and their duties, with deputies.
unit_staff = Table(
    "unit_staff",
    metadata,
    Column("unit_id", String(40), primary_key=True),
    Column("username", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("duties", JSON, nullable=False),
    Column("deputy", Boolean, nullable=False),
    Column("phone", String(20)),
)

replies = Table(
    "replies",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("unit_id", String(40), nullable=False),
    Column("reply", JSON, nullable=False),
    Column("completed_at", UTCDateTime, nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("flagged_at", UTCDateTime, nullable=False),
    Column("keywords", JSON, nullable=False),
)

# What past dispatches teach the suggester: terms seen per matter, units per matter+district.
term_stats = Table(
    "term_stats",
    metadata,
    Column("term", String(40), primary_key=True),
    Column("matter_code", String(32), primary_key=True),
    Column("n", Integer, nullable=False),
)

unit_stats = Table(
    "unit_stats",
    metadata,
    Column("matter_code", String(32), primary_key=True),
    Column("district", String(12), primary_key=True),
    Column("unit_id", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
)
