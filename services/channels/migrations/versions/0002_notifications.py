"""channels: notifications to citizens and units, unit contacts, opt-outs

Revision ID: channels_0002
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "channels_0002"
down_revision = "channels_0001"


def upgrade() -> None:
    with op.batch_alter_table("channel_tickets") as batch:
        batch.add_column(sa.Column("phone", sa.String(20)))
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("ticket_id", sa.String(32)),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("medium", sa.String(10), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("give_up_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("failed_at", UTCDateTime),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("event_id", "medium", "recipient", name="uq_notifications_once"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_table(
        "unit_contacts",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("phones", sa.JSON, nullable=False),
        sa.Column("wechat_openids", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "opt_outs",
        sa.Column("medium", sa.String(10), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("opted_out_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("medium", "recipient"),
    )


def downgrade() -> None:
    for table in ("opt_outs", "unit_contacts", "notifications"):
        op.drop_table(table)
    with op.batch_alter_table("channel_tickets") as batch:
        batch.drop_column("phone")
