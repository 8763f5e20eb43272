"""evaluation: the inbox's ids compare by their bytes on PostgreSQL (issue 12; see
shared.migrations.inbox_ids_compared_bytewise).

Revision ID: evaluation_0013
"""

from shared.migrations import inbox_ids_compared_by_default as downgrade
from shared.migrations import inbox_ids_compared_bytewise as upgrade

revision = "evaluation_0013"
down_revision = "evaluation_0012"


__all__ = ["upgrade", "downgrade"]
