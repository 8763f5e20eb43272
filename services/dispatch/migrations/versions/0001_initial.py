"""dispatch: units, catalog, assignments, outbox and inbox

Revision ID: dispatch_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox

revision = "dispatch_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(40), nullable=True),
        sa.Column("district", sa.String(12), nullable=True),
        sa.Column("parent_id", sa.String(40), nullable=True),
        sa.Column("functional", sa.Boolean, nullable=False),
    )
    op.create_table(
        "matters",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("default_urgency", sa.String(20), nullable=False),
        sa.Column("functional_only", sa.Boolean, nullable=False),
        sa.Column("statutory_period", sa.String(10), nullable=True),
        sa.Column("anonymous_allowed", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("catalog_version", sa.String(20), nullable=False),
    )
    op.create_table(
        "matter_units",
        sa.Column("matter_code", sa.String(32), primary_key=True),
        sa.Column("district", sa.String(12), primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("matter_code", sa.String(32), nullable=False),
        sa.Column("district", sa.String(12), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=True),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("statutory_period", sa.String(10), nullable=True),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.Column("dispatched_at", UTCDateTime, nullable=True),
        sa.Column("accepted_at", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.Column("reply", sa.JSON, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_assignments_unit_state", "assignments", ["unit_id", "state"])


def downgrade() -> None:
    for table in ("assignments", "matter_units", "matters", "units", "inbox", "outbox"):
        op.drop_table(table)
