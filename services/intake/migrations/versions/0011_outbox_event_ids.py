"""intake: the outbox's event ids lose their unique key, an index no query reads (issue 12;
see shared.migrations.drop_outbox_event_id_key).

Revision ID: intake_0011
"""

from shared.migrations import add_outbox_event_id_key as downgrade
from shared.migrations import drop_outbox_event_id_key as upgrade

revision = "intake_0011"
down_revision = "intake_0010"


__all__ = ["upgrade", "downgrade"]
