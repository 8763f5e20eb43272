"""channels: the outbox's event ids lose their unique key, an index no query reads (issue 12;
see shared.migrations.drop_outbox_event_id_key).

Revision ID: channels_0005
"""

from shared.migrations import add_outbox_event_id_key as downgrade
from shared.migrations import drop_outbox_event_id_key as upgrade

revision = "channels_0005"
down_revision = "channels_0004"


__all__ = ["upgrade", "downgrade"]
