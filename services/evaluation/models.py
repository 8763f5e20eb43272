"""The evaluation service's tables (the schema comes from the migrations)."""

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text

from shared.db import UTCDateTime

metadata = MetaData()

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
)
