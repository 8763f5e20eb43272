"""channels: room on the outbox's pages for the relay's marking a row sent (fillfactor 45 on
PostgreSQL; issue 12; see shared.migrations.room_for_outbox_marks).

Revision ID: channels_0009
"""

from shared.migrations import no_room_for_outbox_marks as downgrade
from shared.migrations import room_for_outbox_marks as upgrade

revision = "channels_0009"
down_revision = "channels_0008"


__all__ = ["upgrade", "downgrade"]
