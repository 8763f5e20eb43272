"""evaluation: room on the outbox's pages for the relay's marking a row sent (fillfactor 45 on
PostgreSQL; issue 12; see shared.migrations.room_for_outbox_marks).

Revision ID: evaluation_0016
"""

from shared.migrations import no_room_for_outbox_marks as downgrade
from shared.migrations import room_for_outbox_marks as upgrade

revision = "evaluation_0016"
down_revision = "evaluation_0015"


__all__ = ["upgrade", "downgrade"]
