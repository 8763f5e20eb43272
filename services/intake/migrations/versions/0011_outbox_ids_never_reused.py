"""intake: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: intake_0011
"""

from shared.migrations import outbox_ids_never_reused

revision = "intake_0011"
down_revision = "intake_0010"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
