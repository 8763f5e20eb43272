"""evaluation: the outbox's event ids lose their unique key, an index no query reads (issue 12;
see shared.migrations.drop_outbox_event_id_key).

Revision ID: evaluation_0008
"""

from shared.migrations import add_outbox_event_id_key as downgrade
from shared.migrations import drop_outbox_event_id_key as upgrade

revision = "evaluation_0008"
down_revision = "evaluation_0007"


__all__ = ["upgrade", "downgrade"]
