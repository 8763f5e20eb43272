"""sla: the board's at-risk half read through an index (running clocks by warn_at), so the
overdue / at-risk board finds its few clocks among 100,000 running ones without a scan

Revision ID: sla_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "sla_0005"
down_revision = "sla_0004"


def upgrade() -> None:
    op.create_index(
        "ix_clocks_warn_open",
        "clocks",
        ["warn_at"],
        sqlite_where=sa.text("stopped_at IS NULL"),
        postgresql_where=sa.text("stopped_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_clocks_warn_open", "clocks")
