"""sla: room on the pages of ``clocks`` for a clock's next version (fillfactor 50 on
PostgreSQL, see shared.migrations.room_for_hot_updates; issue 12). Stopping a clock (the
dispatch clock, as its ticket is dispatched) is not a HOT update: the running clocks'
indexes name ``stopped_at`` and ``next_due_at`` in their predicates. But on full pages it
also wrote a lock record on the old version and the new version whole on another page
(e2e, WAL by relation through pg_waldump: 0.77 lock records a ticket for its 1.0 clock
stopped); with room on the row's own page, the new version goes there and only the bytes
that changed go to the WAL. A clock is a ~200-byte row, two a ticket; rows already written
keep their pages. SQLite is unchanged.

Revision ID: sla_0013
"""

from shared.migrations import room_for_hot_updates

revision = "sla_0013"
down_revision = "sla_0012"


def upgrade() -> None:
    room_for_hot_updates("clocks", 50)


def downgrade() -> None:
    room_for_hot_updates("clocks", None)
