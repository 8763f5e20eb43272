"""intake: Idempotency-Key of each registration and the answer it got

Revision ID: intake_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "intake_0004"
down_revision = "intake_0003"


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
