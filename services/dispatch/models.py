"""Dispatch's tables (SQLAlchemy Core; the schema itself comes from the migrations)."""

from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, Text

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
    Column("catalog_version", String(20), nullable=False),
)

matter_units = Table(
    "matter_units",
    metadata,
    Column("matter_code", String(32), primary_key=True),
    Column("district", String(12), primary_key=True),
    Column("unit_id", String(40), nullable=False),
)

assignments = Table(
    "assignments",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("matter_code", String(32), nullable=False),
    Column("district", String(12), nullable=False),
    Column("type", String(20), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("unit_id", String(40)),
    Column("state", String(30), nullable=False),
    Column("round", Integer, nullable=False),
    Column("statutory_period", String(10)),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Column("accepted_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("reply", JSON),
    Column("note", Text),
)
