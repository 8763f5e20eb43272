"""knowledge: the outbox's index by key holds the sent rows only (issue 12; see
shared.migrations.index_sent_outbox_rows_by_key).

Revision ID: knowledge_0009
"""

from shared.migrations import index_all_outbox_rows_by_key as downgrade
from shared.migrations import index_sent_outbox_rows_by_key as upgrade

revision = "knowledge_0009"
down_revision = "knowledge_0008"


__all__ = ["upgrade", "downgrade"]
