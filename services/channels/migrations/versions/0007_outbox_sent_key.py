"""channels: the outbox's index by key holds the sent rows only (issue 12; see
shared.migrations.index_sent_outbox_rows_by_key).

Revision ID: channels_0007
"""

from shared.migrations import index_all_outbox_rows_by_key as downgrade
from shared.migrations import index_sent_outbox_rows_by_key as upgrade

revision = "channels_0007"
down_revision = "channels_0006"


__all__ = ["upgrade", "downgrade"]
