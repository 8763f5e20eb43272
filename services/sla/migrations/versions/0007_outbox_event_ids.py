"""sla: the outbox's event ids lose their unique key, an index no query reads (issue 12;
see shared.migrations.drop_outbox_event_id_key).

Revision ID: sla_0007
"""

from shared.migrations import add_outbox_event_id_key as downgrade
from shared.migrations import drop_outbox_event_id_key as upgrade

revision = "sla_0007"
down_revision = "sla_0006"


__all__ = ["upgrade", "downgrade"]
