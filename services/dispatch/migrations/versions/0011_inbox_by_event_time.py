"""dispatch: the inbox is pruned by when each event was made, read from its UUID v7 id; the
handled time and its index go (issue 12; see shared.migrations.drop_inbox_processed_at).

Revision ID: dispatch_0011
"""

from shared.migrations import add_inbox_processed_at as downgrade
from shared.migrations import drop_inbox_processed_at as upgrade

revision = "dispatch_0011"
down_revision = "dispatch_0010"


__all__ = ["upgrade", "downgrade"]
