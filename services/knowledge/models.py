"""The knowledge service's tables (the schema comes from the migrations)."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

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
    # knowledge_0002
    Column("scope", Text),
    Column("applicable_subjects", Text),
    Column("conditions", Text),
    Column("faq", JSON, nullable=False),
    Column("related_entries", JSON, nullable=False),
    Column("matter_codes", JSON, nullable=False),
    Column("supersedes", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime),
    Column("updated_by", String(64)),
    Column("published_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
    Column("remind_at", UTCDateTime),  # due time of the expiry reminder; null once sent
    Column("reminded_at", UTCDateTime),
    Column("withdrawn_at", UTCDateTime),
    Column("withdrawn_reason", Text),
    Column("expired_at", UTCDateTime),
    Column("superseded_by", String(36)),
)

entry_matters = Table(
    "entry_matters",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("matter_code", String(32), primary_key=True),
)

entry_versions = Table(
    "entry_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("change", String(20), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(64), nullable=False),
    Column("changed_fields", JSON, nullable=False),
    Column("diff", JSON, nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("note", Text),
)

update_requests = Table(
    "update_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("unit_id", String(40), nullable=False),
    Column("entry_id", String(36)),
    Column("action", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("emergency", Boolean, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("period", String(10), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("answered_at", UTCDateTime),
    Column("answered_by", String(64)),
    Column("answer_entry_id", String(36)),
    Column("answer_version", Integer),
    Column("answer_note", Text),
    Column("late", Boolean),
    Column("overdue_at", UTCDateTime),  # when knowledge.request_overdue went out
)

policy_notices = Table(
    "policy_notices",
    metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("unit_id", String(40), nullable=False),
    Column("title", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("publication_at", UTCDateTime, nullable=False),
    Column("interpretation", Text, nullable=False),
    Column("answer_guide", Text, nullable=False),
    Column("training_offered", Boolean, nullable=False),
    Column("entry_ids", JSON, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("registered_by", String(64), nullable=False),
    Column("lead_seconds", Float, nullable=False),
    Column("late", Boolean, nullable=False),
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

# ---- the search index: BM25 over jieba terms, kept in step in the entry's transaction ----

search_docs = Table(
    "search_docs",
    metadata,
    Column("doc_id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("length", Integer, nullable=False),  # weighted number of terms
    Column("terms", Text, nullable=False),  # "term:tf:impact" triples, space-separated
)

search_postings = Table(
    "search_postings",
    metadata,
    Column("term", String(64), nullable=False),
    Column("impact", SmallInteger, nullable=False),  # BM25 term share ×1000 (see search.py)
    Column("doc_id", Integer, nullable=False),
    PrimaryKeyConstraint("term", "impact", "doc_id"),
    sqlite_with_rowid=False,
)

search_terms = Table(
    "search_terms",
    metadata,
    Column("term", String(64), primary_key=True),
    Column("df", Integer, nullable=False),
)

search_stats = Table(
    "search_stats",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doc_count", Integer, nullable=False),
    Column("total_length", BigInteger, nullable=False),
)

# Art 20: a reviewer's decision that a term or marking found in a unit's text is a false
# positive; later screening of that unit's text lets the word pass.
screening_overrules = Table(
    "screening_overrules",
    metadata,
    Column("overrule_id", String(36), primary_key=True),
    Column("unit_id", String(40), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("word", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
)

# Art 25, 30: typical and excellent cases, anonymised, reviewed, then published to the public
# case page and the training library.
cases = Table(
    "cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("ticket_id", String(32), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("title", String(200), nullable=False),
    Column("request", Text, nullable=False),
    Column("handling", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("comment", Text),
    Column("anonymised", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reviewed_by", String(64)),
    Column("reviewed_at", UTCDateTime),
    Column("review_note", Text),
    Column("published_at", UTCDateTime),
)

# Art 25: only a completed (办结) or closed ticket may become a case; fed by ticket.completed
# and ticket.answered (closed on the spot).
finished_tickets = Table(
    "finished_tickets",
    metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("finished_at", UTCDateTime, nullable=False),
)
