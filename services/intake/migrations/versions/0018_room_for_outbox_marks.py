"""intake: room on the outbox's pages for the relay's marking a row sent (fillfactor 45 on
PostgreSQL; issue 12; see shared.migrations.room_for_outbox_marks).

Revision ID: intake_0018
"""

from shared.migrations import no_room_for_outbox_marks as downgrade
from shared.migrations import room_for_outbox_marks as upgrade

revision = "intake_0018"
down_revision = "intake_0017"


__all__ = ["upgrade", "downgrade"]
