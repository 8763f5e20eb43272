"""channels: the inbox's ids compare by their bytes on PostgreSQL (issue 12; see
shared.migrations.inbox_ids_compared_bytewise).

Revision ID: channels_0008
"""

from shared.migrations import inbox_ids_compared_by_default as downgrade
from shared.migrations import inbox_ids_compared_bytewise as upgrade

revision = "channels_0008"
down_revision = "channels_0007"


__all__ = ["upgrade", "downgrade"]
