"""Intake's tables (SQLAlchemy Core; the schema itself comes from the migrations)."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    false,
)
from sqlalchemy.dialects import postgresql

from services.intake.domain import ticket_serial
from shared.audit import chain_columns
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
    # intake_0007: sealed at rest (services/intake/sealed.py), the phone found by its index
    Column("requester_name_sealed", Text),
    Column("requester_phone_sealed", Text),
    Column("requester_id_number_sealed", Text),
    Column("requester_phone_index", String(32)),
    Column("anonymous", Boolean, nullable=False),
    Column("flagged", Boolean, nullable=False),
    # status, lead_unit_id, status_at: set by other services' events, in no index on
    # PostgreSQL so that their updates are HOT (intake_0010)
    Column("status", String(24), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("registered_by", String(64), nullable=False),
    Column("lead_unit_id", String(40)),  # from dispatch: the unit handling it (Art 13)
    # intake_0002
    Column("attachments", JSON),  # [{"url", "name", "content_type"}], references only
    Column("flagged_keywords", JSON),  # the policy keywords found (Art 27)
    Column("answer", Text),  # answered on the spot (Art 6)
    Column("knowledge_entry_ids", JSON),
    Column("answered_at", UTCDateTime),
    Column("answered_by", String(64)),
    Column("call_rating", String(24)),  # Art 14 (1)
    Column("call_rated_at", UTCDateTime),
    Column("call_rated_by", String(64)),
    Column("reply", JSON),  # the latest completion reply (Art 13), from ticket.completed
    Column("completed_at", UTCDateTime),
    Column("status_at", UTCDateTime),  # occurred_at of the event that set the status
)


def numbered(number: str) -> ColumnElement[bool]:
    """The row of the ticket numbered ``number``: by the serial the number ends with (the
    primary key) and the whole number. On PostgreSQL the numbers have no index of their
    own (intake_0016): a number is made of its ticket's serial, so the primary key finds
    it. No row for a text that is no ticket number."""
    serial = ticket_serial(number)
    if serial is None:
        return false()
    return and_(tickets.c.id == serial, tickets.c.ticket_id == number)


# The words each ticket is found by (domain.search_terms), so text search is an indexed
# lookup: a ticket matches when it has every word of the query.
# SQLite: a row per word of a ticket.
ticket_terms = Table(
    "ticket_terms",
    metadata,
    Column("term", String(32), primary_key=True),
    Column("ticket_pk", Integer, primary_key=True),
)
# PostgreSQL (intake_0009): a row per ticket, its words one array (COLLATE "C") under a GIN
# index, a search being ``terms @> ARRAY[the query's words]``: a ticket's words cost one
# row and one GIN entry to write instead of a row and a key each (about 37). Apart from the
# tickets, whose rows their status updates rewrite, and narrow, for counting matches.
ticket_words = Table(
    "ticket_words",
    metadata,
    Column("ticket_pk", Integer, primary_key=True),
    Column("terms", postgresql.ARRAY(Text), nullable=False),
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

# Intake's policy settings (sensitive keywords, duplicate window, attachment limits),
# one row per version, in force from its effective date.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", UTCDateTime, nullable=False, unique=True),
    Column("settings", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Art 28, 29: every read of a requester's full name and phone, by whom and when.
requester_reads = Table(
    "requester_reads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(32), nullable=False),
    Column("reader", String(64), nullable=False),
    Column("reader_role", String(20), nullable=False),
    Column("read_at", UTCDateTime, nullable=False),
    Column("purpose", String(64), nullable=False),
    *chain_columns(),  # hash-chained: shared/audit.py
)

# A registration's Idempotency-Key (per caller) and the answer it got, so a retried POST
# returns the first ticket instead of filing a second one; kept for a retention period.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("ticket_id", String(32), nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
