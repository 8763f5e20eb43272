"""knowledge: outbox ids never reused (SQLite), now that sent rows leave the outbox at once

Revision ID: knowledge_0007
"""

from shared.migrations import outbox_ids_never_reused

revision = "knowledge_0007"
down_revision = "knowledge_0006"


def upgrade() -> None:
    outbox_ids_never_reused()


def downgrade() -> None:
    outbox_ids_never_reused(reused=True)
