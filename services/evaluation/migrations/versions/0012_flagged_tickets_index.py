"""evaluation: ``ix_tickets_flagged`` holds the flagged tickets only, by when they were flagged
(issue 12): the list of flagged tickets (Art 27) reads ``flagged IS TRUE`` newest first, and
every ticket the service hears of was an entry, nearly all of them not flagged. Flagging a
ticket writes its entry, as before (the update changes an indexed column either way). The
predicate is the list's condition as SQLAlchemy writes it (``flagged.is_(True)``), so that
PostgreSQL matches the two.

Revision ID: evaluation_0012
"""

from shared.migrations import remake_index

revision = "evaluation_0012"
down_revision = "evaluation_0011"


def upgrade() -> None:
    remake_index("ix_tickets_flagged", "tickets", ["flagged_at"], "flagged IS TRUE")


def downgrade() -> None:
    remake_index("ix_tickets_flagged", "tickets", ["flagged", "flagged_at"])
