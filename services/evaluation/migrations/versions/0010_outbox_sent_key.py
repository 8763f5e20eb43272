"""evaluation: the outbox's index by key holds the sent rows only (issue 12; see
shared.migrations.index_sent_outbox_rows_by_key).

Revision ID: evaluation_0010
"""

from shared.migrations import index_all_outbox_rows_by_key as downgrade
from shared.migrations import index_sent_outbox_rows_by_key as upgrade

revision = "evaluation_0010"
down_revision = "evaluation_0009"


__all__ = ["upgrade", "downgrade"]
