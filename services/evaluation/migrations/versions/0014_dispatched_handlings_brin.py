"""evaluation: on PostgreSQL ``ix_handlings_dispatched`` is a BRIN index (issue 12), not a
B-tree: every dispatch inserts a handling and wrote its entry into the B-tree, read only
by the scores' period (``load_handlings``: dispatched or accepted in a period, a monthly
report). Handlings are written in dispatch-time order, so each range of the table's pages
holds a narrow span of dispatch times and a BRIN summary of each range finds a period's
pages; an insert into a range not yet summarized (the newest, until vacuum summarizes it)
writes nothing, one into a summarized range nothing unless it widens the range. Measured
by bench/handlings_index.py (100,000 handlings in batches of 100, the tables' batches
alternating): see the commit. SQLite keeps the B-tree (it has no BRIN).

Revision ID: evaluation_0014
"""

from alembic import op

revision = "evaluation_0014"
down_revision = "evaluation_0013"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_handlings_dispatched", table_name="handlings")
        op.create_index(
            "ix_handlings_dispatched", "handlings", ["dispatched_at"], postgresql_using="brin"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_handlings_dispatched", table_name="handlings")
        op.create_index("ix_handlings_dispatched", "handlings", ["dispatched_at"])
