"""knowledge: the inbox is pruned by when each event was made, read from its UUID v7 id; the
handled time and its index go (issue 12; see shared.migrations.drop_inbox_processed_at).

Revision ID: knowledge_0008
"""

from shared.migrations import add_inbox_processed_at as downgrade
from shared.migrations import drop_inbox_processed_at as upgrade

revision = "knowledge_0008"
down_revision = "knowledge_0007"


__all__ = ["upgrade", "downgrade"]
