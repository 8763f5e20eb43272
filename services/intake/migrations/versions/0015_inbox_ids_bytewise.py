"""intake: the inbox's ids compare by their bytes on PostgreSQL (issue 12; see
shared.migrations.inbox_ids_compared_bytewise).

Revision ID: intake_0015
"""

from shared.migrations import inbox_ids_compared_by_default as downgrade
from shared.migrations import inbox_ids_compared_bytewise as upgrade

revision = "intake_0015"
down_revision = "intake_0014"


__all__ = ["upgrade", "downgrade"]
