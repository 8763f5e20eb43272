"""dispatch: the queues' order (state, flagged, registered_at) as one index, so the manual
queue reads its first page without scanning every assignment

Revision ID: dispatch_0005
"""

from alembic import op

revision = "dispatch_0005"
down_revision = "dispatch_0004"


def upgrade() -> None:
    op.create_index("ix_assignments_queue", "assignments", ["state", "flagged", "registered_at"])


def downgrade() -> None:
    op.drop_index("ix_assignments_queue", "assignments")
