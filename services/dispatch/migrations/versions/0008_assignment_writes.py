"""dispatch: cheaper writes of work orders (issue 12)
- ``ix_assignments_state`` (state) goes: ``ix_assignments_queue`` (state, flagged,
  registered_at) starts with the same column and serves every lookup by state, and each
  insert and each update that is not HOT wrote both;
- room on each page for HOT updates (fillfactor 50): the SLA's deadlines arrive as a batch
  update of rows inserted together; ``dispatch_deadline`` is in no index and its update
  became HOT for 1 row in 100 on full pages (all of them at 50: 24 -> 8 us of PostgreSQL's
  CPU per row). ``acceptance_deadline`` and ``completion_deadline`` change the generated
  ``due_at`` of ``ix_assignments_inbox``, so those updates write the indexes either way.

Revision ID: dispatch_0008
"""

from alembic import op

from shared.migrations import room_for_hot_updates

revision = "dispatch_0008"
down_revision = "dispatch_0007"


def upgrade() -> None:
    op.drop_index("ix_assignments_state", "assignments")
    room_for_hot_updates("assignments", 50)


def downgrade() -> None:
    room_for_hot_updates("assignments", None)
    op.create_index("ix_assignments_state", "assignments", ["state"])
