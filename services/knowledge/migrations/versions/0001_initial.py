"""knowledge: entries, outbox and inbox

Revision ID: knowledge_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox

revision = "knowledge_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "entries",
        sa.Column("entry_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("valid_from", UTCDateTime, nullable=False),
        sa.Column("valid_until", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_entries_unit", "entries", ["unit_id"])


def downgrade() -> None:
    for table in ("entries", "inbox", "outbox"):
        op.drop_table(table)
