"""dispatch: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: dispatch_0010
"""

from shared.migrations import outbox_ids_never_reused

revision = "dispatch_0010"
down_revision = "dispatch_0009"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
