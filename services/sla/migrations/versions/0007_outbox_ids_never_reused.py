"""sla: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: sla_0007
"""

from shared.migrations import outbox_ids_never_reused

revision = "sla_0007"
down_revision = "sla_0006"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
