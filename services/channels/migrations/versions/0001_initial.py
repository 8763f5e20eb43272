"""channels: accounts, WeChat messages, calls, webhook subscriptions and deliveries

Revision ID: channels_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_outbox_and_inbox, create_outbox_key_index

revision = "channels_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    create_outbox_key_index()
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20)),
        sa.Column("unit_id", sa.String(40)),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", UTCDateTime),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("default_matter_code", sa.String(32)),
        sa.Column("default_district", sa.String(6)),
        sa.Column("default_type", sa.String(20)),
        sa.Column("wechat_app_id", sa.String(64)),
        sa.Column("wechat_token", sa.String(64)),
        sa.Column("wechat_aes_key", sa.String(43)),
    )
    op.create_table(
        "channel_tickets",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("openid", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_channel_tickets_openid", "channel_tickets", ["account_id", "openid"])
    op.create_table(
        "wechat_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("msg_key", sa.String(100), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("msg_type", sa.String(20), nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("ticket_id", sa.String(32)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("account_id", "msg_key", name="uq_wechat_messages_key"),
    )
    op.create_index("ix_wechat_messages_due", "wechat_messages", ["status", "next_attempt_at"])
    op.create_table(
        "calls",
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("caller_number", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("answered_at", UTCDateTime),
        sa.Column("agent", sa.String(64)),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("ticket_id", sa.String(32)),
        sa.Column("rating", sa.String(24)),
        sa.Column("rated_at", UTCDateTime),
        sa.PrimaryKeyConstraint("account_id", "call_id"),
    )
    op.create_table(
        "caller_history_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("reader_role", sa.String(20), nullable=False),
        sa.Column("read_at", UTCDateTime, nullable=False),
        sa.Column("tickets", sa.JSON, nullable=False),
    )
    op.create_table(
        "ticket_units",
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "unit_id"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.String(36), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("unit_id", sa.String(40)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(36), primary_key=True),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("ticket_id", sa.String(32)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("give_up_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("dead_at", UTCDateTime),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_deliveries_event"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column("attempted_at", UTCDateTime, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_delivery_attempts_delivery", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    for table in (
        "delivery_attempts",
        "deliveries",
        "subscriptions",
        "ticket_units",
        "caller_history_reads",
        "calls",
        "wechat_messages",
        "channel_tickets",
        "accounts",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
