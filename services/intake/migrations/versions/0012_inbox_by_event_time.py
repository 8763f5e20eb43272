"""intake: the inbox is pruned by when each event was made, read from its UUID v7 id; the
handled time and its index go (issue 12; see shared.migrations.drop_inbox_processed_at).

Revision ID: intake_0012
"""

from shared.migrations import add_inbox_processed_at as downgrade
from shared.migrations import drop_inbox_processed_at as upgrade

revision = "intake_0012"
down_revision = "intake_0011"


__all__ = ["upgrade", "downgrade"]
