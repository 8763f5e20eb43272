"""intake: tickets, the matter read model, outbox and inbox

Revision ID: intake_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox

revision = "intake_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), unique=True, nullable=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("matter_code", sa.String(32), nullable=False),
        sa.Column("district", sa.String(12), nullable=False),
        sa.Column("address", sa.String(200), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("requester_name", sa.String(50), nullable=True),
        sa.Column("requester_phone", sa.String(20), nullable=True),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_tickets_registered_at", "tickets", ["registered_at"])
    op.create_table(
        "matters",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("default_urgency", sa.String(20), nullable=False),
        sa.Column("anonymous_allowed", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in ("matters", "tickets", "inbox", "outbox"):
        op.drop_table(table)
