"""evaluation: approved extensions and the unit's explanation, for the revisit (Art 12)

Revision ID: evaluation_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "evaluation_0004"
down_revision = "evaluation_0003"


def upgrade() -> None:
    op.create_table(
        "extensions",
        sa.Column("extension_id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("approved_at", UTCDateTime, nullable=False),
        sa.Column("old_deadline", UTCDateTime, nullable=False),
        sa.Column("new_deadline", UTCDateTime, nullable=False),
        sa.Column("explained_via", sa.String(20), nullable=True),
        sa.Column("explained_at", UTCDateTime, nullable=True),
        sa.Column("progress", sa.Text, nullable=True),
        sa.Column("measures", sa.Text, nullable=True),
        sa.Column("content", sa.Text, nullable=True),
    )
    op.create_index("ix_extensions_ticket_id", "extensions", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("extensions")
