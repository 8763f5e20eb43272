"""intake: the outbox's index by key holds the sent rows only (issue 12; see
shared.migrations.index_sent_outbox_rows_by_key).

Revision ID: intake_0014
"""

from shared.migrations import index_all_outbox_rows_by_key as downgrade
from shared.migrations import index_sent_outbox_rows_by_key as upgrade

revision = "intake_0014"
down_revision = "intake_0013"


__all__ = ["upgrade", "downgrade"]
