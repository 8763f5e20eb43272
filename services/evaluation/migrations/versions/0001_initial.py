"""evaluation: revisits, outbox and inbox

Revision ID: evaluation_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox

revision = "evaluation_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "revisits",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=False),
        sa.Column("rating", sa.String(30), nullable=True),
        sa.Column("resolved", sa.Boolean, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("recorded_at", UTCDateTime, nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    for table in ("revisits", "inbox", "outbox"):
        op.drop_table(table)
