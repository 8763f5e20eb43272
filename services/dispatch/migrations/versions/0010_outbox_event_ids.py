"""dispatch: the outbox's event ids lose their unique key, an index no query reads (issue 12;
see shared.migrations.drop_outbox_event_id_key).

Revision ID: dispatch_0010
"""

from shared.migrations import add_outbox_event_id_key as downgrade
from shared.migrations import drop_outbox_event_id_key as upgrade

revision = "dispatch_0010"
down_revision = "dispatch_0009"


__all__ = ["upgrade", "downgrade"]
