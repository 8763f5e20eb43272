"""sla: warnings, escalation, re-dispatch, extensions, calendar overrides

Revision ID: sla_0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "sla_0002"
down_revision = "sla_0001"


def upgrade() -> None:
    op.drop_index("ix_clocks_due", table_name="clocks")
    with op.batch_alter_table("clocks") as batch:
        batch.drop_constraint("uq_clock_ticket_kind_round", type_="unique")
        batch.add_column(sa.Column("dispatch_no", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("cancelled_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("warn_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("warned_at", UTCDateTime, nullable=True))
        batch.add_column(
            sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("escalate_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("next_due_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("district", sa.String(12), nullable=True))
        batch.add_column(sa.Column("extensions", sa.Integer, nullable=False, server_default="0"))
        batch.create_unique_constraint(
            "uq_clock_ticket_kind_round_dispatch", ["ticket_id", "kind", "round", "dispatch_no"]
        )
    op.execute(
        "UPDATE clocks SET next_due_at = deadline WHERE stopped_at IS NULL AND overdue_at IS NULL"
    )
    # The scanner's only query: the next clock that needs action (warning, overdue,
    # escalation). Clocks with nothing left to do drop out of the index.
    op.create_index(
        "ix_clocks_next_due",
        "clocks",
        ["next_due_at"],
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
        sqlite_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_index(
        "ix_clocks_deadline_open",
        "clocks",
        ["deadline"],
        postgresql_where=sa.text("stopped_at IS NULL"),
        sqlite_where=sa.text("stopped_at IS NULL"),
    )
    op.create_table(
        "extensions",
        sa.Column("extension_id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(32), nullable=False, index=True),
        sa.Column("clock_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("progress", sa.Text, nullable=False),
        sa.Column("measures", sa.Text, nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("reject_reason", sa.Text, nullable=True),
        sa.Column("explanation_to_requester", sa.Text, nullable=True),
        sa.Column("period", sa.String(10), nullable=True),
        sa.Column("old_deadline", UTCDateTime, nullable=False),
        sa.Column("new_deadline", UTCDateTime, nullable=True),
    )
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("working", sa.Boolean, nullable=False),
        sa.Column("note", sa.String(100), nullable=True),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("entered_by", sa.String(64), nullable=False),
        sa.Column("entered_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("calendar_years", "calendar_days", "extensions"):
        op.drop_table(table)
