"""knowledge: screening overrules (Art 20 false positives, with the reviewer's reason)

Revision ID: knowledge_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "knowledge_0004"
down_revision = "knowledge_0003"


def upgrade() -> None:
    op.create_table(
        "screening_overrules",
        sa.Column("overrule_id", sa.String(36), primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("word", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_screening_overrules_unit_id", "screening_overrules", ["unit_id"])


def downgrade() -> None:
    op.drop_table("screening_overrules")
