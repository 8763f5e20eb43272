"""channels: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: channels_0005
"""

from shared.migrations import outbox_ids_never_reused

revision = "channels_0005"
down_revision = "channels_0004"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
