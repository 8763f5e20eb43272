"""knowledge: typical and excellent cases for training and publicity (Art 25, 30)

Revision ID: knowledge_0005
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "knowledge_0005"
down_revision = "knowledge_0004"


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("handling", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("anonymised", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", UTCDateTime, nullable=True),
        sa.Column("review_note", sa.Text, nullable=True),
        sa.Column("published_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_cases_status", "cases", ["status"])


def downgrade() -> None:
    op.drop_table("cases")
