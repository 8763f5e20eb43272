"""evaluation: ``ix_handlings_accepted`` holds the accepted handlings only (issue 12): every
dispatch inserts a handling not yet accepted, and its entry in the index (a NULL) was read
by no query: the scores read a period of acceptances (``accepted_at`` in a range, which
implies it is not NULL). The acceptance writes the handling's entry, as before (its update
changes an indexed column).

Revision ID: evaluation_0011
"""

from shared.migrations import remake_index

revision = "evaluation_0011"
down_revision = "evaluation_0010"


def upgrade() -> None:
    remake_index("ix_handlings_accepted", "handlings", ["accepted_at"], "accepted_at IS NOT NULL")


def downgrade() -> None:
    remake_index("ix_handlings_accepted", "handlings", ["accepted_at"])
