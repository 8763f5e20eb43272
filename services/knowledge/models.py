"""The knowledge service's tables (the schema comes from the migrations)."""

from sqlalchemy import Column, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

entries = Table(
    "entries",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("legal_basis", Text),
    Column("unit_id", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
)
