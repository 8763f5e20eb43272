"""evaluation: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: evaluation_0008
"""

from shared.migrations import outbox_ids_never_reused

revision = "evaluation_0008"
down_revision = "evaluation_0007"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
