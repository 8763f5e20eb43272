"""evaluation: room on the pages of ``tickets`` and ``sla_clocks`` for HOT updates
(fillfactor 50, see shared.migrations; issue 12): a ticket's unit, round and state, and a
clock's deadline, are in no index, but on full pages their batch updates wrote every index
of the table for most rows (``tickets``: 13.5 -> 6.3 us of PostgreSQL's CPU per row).

Revision ID: evaluation_0007
"""

from shared.migrations import room_for_hot_updates

revision = "evaluation_0007"
down_revision = "evaluation_0006"


def upgrade() -> None:
    room_for_hot_updates("tickets", 50)
    room_for_hot_updates("sla_clocks", 50)


def downgrade() -> None:
    room_for_hot_updates("tickets", None)
    room_for_hot_updates("sla_clocks", None)
