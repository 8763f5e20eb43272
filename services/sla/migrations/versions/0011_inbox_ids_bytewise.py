"""sla: the inbox's ids compare by their bytes on PostgreSQL (issue 12; see
shared.migrations.inbox_ids_compared_bytewise).

Revision ID: sla_0011
"""

from shared.migrations import inbox_ids_compared_by_default as downgrade
from shared.migrations import inbox_ids_compared_bytewise as upgrade

revision = "sla_0011"
down_revision = "sla_0010"


__all__ = ["upgrade", "downgrade"]
