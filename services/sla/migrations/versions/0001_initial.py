"""sla: ticket read model, clocks, policy versions, outbox and inbox

Revision ID: sla_0001
"""

import sqlalchemy as sa
from alembic import op

from services.sla.domain import DEFAULT_POLICY, DEFAULT_POLICY_EFFECTIVE_FROM
from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox

revision = "sla_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("district", sa.String(12), nullable=True),
        sa.Column("unit_id", sa.String(40), nullable=True),
        sa.Column("statutory_period", sa.String(10), nullable=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "clocks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=True),
        sa.Column("urgency", sa.String(20), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("deadline", UTCDateTime, nullable=False),
        sa.Column("provisional", sa.Boolean, nullable=False),
        sa.Column("stopped_at", UTCDateTime, nullable=True),
        sa.Column("overdue_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("ticket_id", "kind", "round", name="uq_clock_ticket_kind_round"),
    )
    # The scanner's only query: open clocks whose overdue event is not yet out, by deadline.
    op.create_index(
        "ix_clocks_due",
        "clocks",
        ["deadline"],
        postgresql_where=sa.text("stopped_at IS NULL AND overdue_at IS NULL"),
        sqlite_where=sa.text("stopped_at IS NULL AND overdue_at IS NULL"),
    )
    op.create_index("ix_clocks_ticket", "clocks", ["ticket_id"])
    policy = op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("effective_from", UTCDateTime, nullable=False, unique=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        policy,
        [
            {
                "effective_from": DEFAULT_POLICY_EFFECTIVE_FROM,
                "settings": DEFAULT_POLICY,
                "created_by": "migration",
            }
        ],
    )


def downgrade() -> None:
    for table in ("policy_versions", "clocks", "tickets", "inbox", "outbox"):
        op.drop_table(table)
