"""knowledge: the inbox's ids compare by their bytes on PostgreSQL (issue 12; see
shared.migrations.inbox_ids_compared_bytewise).

Revision ID: knowledge_0010
"""

from shared.migrations import inbox_ids_compared_by_default as downgrade
from shared.migrations import inbox_ids_compared_bytewise as upgrade

revision = "knowledge_0010"
down_revision = "knowledge_0009"


__all__ = ["upgrade", "downgrade"]
