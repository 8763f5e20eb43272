"""knowledge: entry elements, life cycle and due times, versions, update requests,
policy notices, policy settings, the search index

Revision ID: knowledge_0002
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from services.knowledge.domain import (
    DEFAULT_POLICY_EFFECTIVE_FROM,
    DEFAULT_SETTINGS,
)
from shared.db import UTCDateTime

revision = "knowledge_0002"
down_revision = "knowledge_0001"

_NEW_ENTRY_COLUMNS = (
    "scope",
    "applicable_subjects",
    "conditions",
    "faq",
    "related_entries",
    "matter_codes",
    "supersedes",
    "version",
    "updated_at",
    "updated_by",
    "published_at",
    "confirmed_at",
    "remind_at",
    "reminded_at",
    "withdrawn_at",
    "withdrawn_reason",
    "expired_at",
    "superseded_by",
)


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("scope", sa.Text, nullable=True))
        batch.add_column(sa.Column("applicable_subjects", sa.Text, nullable=True))
        batch.add_column(sa.Column("conditions", sa.Text, nullable=True))
        for name in ("faq", "related_entries", "matter_codes", "supersedes"):
            batch.add_column(sa.Column(name, sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("updated_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("updated_by", sa.String(64), nullable=True))
        for name in (
            "published_at",
            "confirmed_at",
            "remind_at",
            "reminded_at",
            "withdrawn_at",
            "expired_at",
        ):
            batch.add_column(sa.Column(name, UTCDateTime, nullable=True))
        batch.add_column(sa.Column("withdrawn_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(36), nullable=True))
    # The scanner's queries: published entries by reminder time and by end of validity.
    op.create_index(
        "ix_entries_remind",
        "entries",
        ["remind_at"],
        postgresql_where=sa.text("status = 'published' AND remind_at IS NOT NULL"),
        sqlite_where=sa.text("status = 'published' AND remind_at IS NOT NULL"),
    )
    op.create_index(
        "ix_entries_expiry",
        "entries",
        ["valid_until"],
        postgresql_where=sa.text("status = 'published'"),
        sqlite_where=sa.text("status = 'published'"),
    )
    op.create_table(
        "entry_matters",
        sa.Column("entry_id", sa.String(36), primary_key=True),
        sa.Column("matter_code", sa.String(32), primary_key=True),
    )
    op.create_index("ix_entry_matters_code", "entry_matters", ["matter_code"])
    versions = op.create_table(
        "entry_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("change", sa.String(20), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_fields", sa.JSON, nullable=False),
        sa.Column("diff", sa.JSON, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.UniqueConstraint("entry_id", "version", name="uq_entry_versions_entry_version"),
    )
    op.create_table(
        "update_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("emergency", sa.Boolean, nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("provisional", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("answered_at", UTCDateTime, nullable=True),
        sa.Column("answered_by", sa.String(64), nullable=True),
        sa.Column("answer_entry_id", sa.String(36), nullable=True),
        sa.Column("answer_version", sa.Integer, nullable=True),
        sa.Column("answer_note", sa.Text, nullable=True),
        sa.Column("late", sa.Boolean, nullable=True),
        sa.Column("overdue_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_update_requests_unit", "update_requests", ["unit_id", "requested_at"])
    op.create_index(
        "ix_update_requests_due",
        "update_requests",
        ["due_at"],
        postgresql_where=sa.text("status = 'open' AND overdue_at IS NULL"),
        sqlite_where=sa.text("status = 'open' AND overdue_at IS NULL"),
    )
    op.create_table(
        "policy_notices",
        sa.Column("notice_id", sa.String(36), primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("publication_at", UTCDateTime, nullable=False),
        sa.Column("interpretation", sa.Text, nullable=False),
        sa.Column("answer_guide", sa.Text, nullable=False),
        sa.Column("training_offered", sa.Boolean, nullable=False),
        sa.Column("entry_ids", sa.JSON, nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("lead_seconds", sa.Float, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_index("ix_policy_notices_unit", "policy_notices", ["unit_id", "registered_at"])
    policy = op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("effective_from", UTCDateTime, nullable=False, unique=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.bulk_insert(
        policy,
        [
            {
                "effective_from": DEFAULT_POLICY_EFFECTIVE_FROM,
                "settings": DEFAULT_SETTINGS.model_dump(mode="json"),
                "created_by": "migration",
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.create_table(
        "search_docs",
        sa.Column("doc_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(36), nullable=False, unique=True),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
    )
    op.create_table(
        "search_postings",
        sa.Column("term", sa.String(64), nullable=False),
        sa.Column("impact", sa.SmallInteger, nullable=False),
        sa.Column("doc_id", sa.Integer, nullable=False),
        # a term's best documents are the first rows of one index range
        sa.PrimaryKeyConstraint("term", "impact", "doc_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "search_terms",
        sa.Column("term", sa.String(64), primary_key=True),
        sa.Column("df", sa.Integer, nullable=False),
    )
    stats = op.create_table(
        "search_stats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc_count", sa.Integer, nullable=False),
        sa.Column("total_length", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(stats, [{"id": 1, "doc_count": 0, "total_length": 0}])
    _backfill(versions)


def _backfill(versions: sa.Table) -> None:
    """Entries written before this revision: a first version, a reminder due time and a
    publication time. (The service indexes unindexed entries when it starts.)"""
    bind = op.get_bind()
    entries = sa.Table("entries", sa.MetaData(), autoload_with=bind)
    reminder = timedelta(days=DEFAULT_SETTINGS.reminder_days_before_expiry)
    rows = bind.execute(sa.select(entries)).mappings().all()
    for row in rows:
        created_at = _aware(row["created_at"])
        valid_until = _aware(row["valid_until"])
        published = row["status"] == "published"
        bind.execute(
            entries.update()
            .where(entries.c.entry_id == row["entry_id"])
            .values(
                published_at=created_at if published else None,
                remind_at=(valid_until - reminder) if published else None,
            )
        )
        snapshot = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in row.items()
            if k not in _NEW_ENTRY_COLUMNS
        }
        bind.execute(
            versions.insert().values(
                entry_id=row["entry_id"],
                version=1,
                change="created",
                changed_at=created_at,
                changed_by=row["created_by"],
                changed_fields=[],
                diff={},
                snapshot=snapshot,
                note="recorded by migration knowledge_0002",
            )
        )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def downgrade() -> None:
    for table in (
        "search_stats",
        "search_terms",
        "search_postings",
        "search_docs",
        "policy_versions",
        "policy_notices",
        "update_requests",
        "entry_versions",
        "entry_matters",
    ):
        op.drop_table(table)
    op.drop_index("ix_entries_expiry", "entries")
    op.drop_index("ix_entries_remind", "entries")
    with op.batch_alter_table("entries") as batch:
        for name in _NEW_ENTRY_COLUMNS:
            batch.drop_column(name)
