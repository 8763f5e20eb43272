"""Intake's tables (SQLAlchemy Core; the schema itself comes from the migrations)."""

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), unique=True),
    Column("channel", String(20), nullable=False),
    Column("type", String(20), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("matter_code", String(32), nullable=False),
    Column("district", String(12), nullable=False),
    Column("address", String(200)),
    Column("content", Text, nullable=False),
    Column("requester_name", String(50)),
    Column("requester_phone", String(20)),
    Column("anonymous", Boolean, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("registered_by", String(64), nullable=False),
)

# Read model of the dispatch catalog, fed by catalog.matter_published events.
matters = Table(
    "matters",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("default_urgency", String(20), nullable=False),
    Column("anonymous_allowed", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
)
