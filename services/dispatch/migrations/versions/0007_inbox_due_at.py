"""dispatch: the deadline of the running clock stored on each work order (``due_at``: the
completion deadline once accepted, the acceptance deadline while dispatched or under return
review, else none), kept by the database itself from the deadline columns that the SLA's
sla.deadline_set events set, and the inbox's order as one index, so a unit's inbox reads its
first page in that index instead of sorting every open ticket of the unit

Revision ID: dispatch_0007
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "dispatch_0007"
down_revision = "dispatch_0006"

DUE_AT_SQL = (
    "CASE WHEN state = 'accepted' THEN completion_deadline"
    " WHEN state IN ('dispatched', 'return_review') THEN acceptance_deadline END"
)

INBOX_ORDER: list[str | sa.TextClause] = [
    "unit_id",
    "state",
    sa.text("flagged DESC"),
    sa.text("(due_at IS NULL)"),
    "due_at",
    "dispatched_at",
    "ticket_id",
]


def upgrade() -> None:
    # PostgreSQL stores a generated column; SQLite computes it and stores it in the index
    stored = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "assignments", sa.Column("due_at", UTCDateTime, sa.Computed(DUE_AT_SQL, persisted=stored))
    )
    op.create_index("ix_assignments_inbox", "assignments", INBOX_ORDER)
    op.drop_index("ix_assignments_unit_state", "assignments")  # the new index's first columns


def downgrade() -> None:
    op.create_index("ix_assignments_unit_state", "assignments", ["unit_id", "state"])
    op.drop_index("ix_assignments_inbox", "assignments")
    op.drop_column("assignments", "due_at")
