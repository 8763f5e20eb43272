"""sla: one index of running clocks for the overdue / at-risk board instead of two (issue 12):
``ix_clocks_attention`` on when a clock first needs attention, its warning time (or, for a
clock without one, its deadline), replaces ``ix_clocks_warn_open`` (warn_at) and
``ix_clocks_deadline_open`` (deadline). A clock's warning never comes after its deadline
(``domain.warning_at``: a fraction between 0 and 1 of its period; an extension moves the
deadline only later), so every overdue clock is in the index's range up to now as well as
every warned one; the board filters that range by the deadline. Each clock started wrote
an entry into both indexes; now into one.

Revision ID: sla_0010
"""

import sqlalchemy as sa
from alembic import op

revision = "sla_0010"
down_revision = "sla_0009"

RUNNING = sa.text("stopped_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_clocks_attention",
        "clocks",
        [sa.text("coalesce(warn_at, deadline)")],
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )
    op.drop_index("ix_clocks_warn_open", "clocks")
    op.drop_index("ix_clocks_deadline_open", "clocks")


def downgrade() -> None:
    for name, column in (
        ("ix_clocks_warn_open", "warn_at"),
        ("ix_clocks_deadline_open", "deadline"),
    ):
        op.create_index(name, "clocks", [column], sqlite_where=RUNNING, postgresql_where=RUNNING)
    op.drop_index("ix_clocks_attention", "clocks")
