"""dispatch: the outbox's index by key holds the sent rows only (issue 12; see
shared.migrations.index_sent_outbox_rows_by_key).

Revision ID: dispatch_0012
"""

from shared.migrations import index_all_outbox_rows_by_key as downgrade
from shared.migrations import index_sent_outbox_rows_by_key as upgrade

revision = "dispatch_0012"
down_revision = "dispatch_0011"


__all__ = ["upgrade", "downgrade"]
