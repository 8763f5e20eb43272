"""The SLA service's tables (SQLAlchemy Core; the schema comes from the migrations)."""

from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table

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
    Column("unit_id", String(40)),
    Column("urgency", String(20), nullable=False),
    Column("period", String(10), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("overdue_at", UTCDateTime),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", UTCDateTime, nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
)
