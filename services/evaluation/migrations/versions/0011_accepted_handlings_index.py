"""evaluation: ``ix_handlings_accepted`` holds the accepted handlings only (issue 12): every
dispatch inserts a handling not yet accepted, and its entry in the index (a NULL) was read
by no query: the scores read a period of acceptances (``accepted_at`` in a range, which
implies it is not NULL). The acceptance writes the handling's entry, as before (its update
changes an indexed column).

Revision ID: evaluation_0011
"""

import sqlalchemy as sa
from alembic import op

revision = "evaluation_0011"
down_revision = "evaluation_0010"

ACCEPTED = sa.text("accepted_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_handlings_accepted", "handlings")
    op.create_index(
        "ix_handlings_accepted",
        "handlings",
        ["accepted_at"],
        sqlite_where=ACCEPTED,
        postgresql_where=ACCEPTED,
    )


def downgrade() -> None:
    op.drop_index("ix_handlings_accepted", "handlings")
    op.create_index("ix_handlings_accepted", "handlings", ["accepted_at"])
