"""dispatch: positions of the parties to a joint determination (Art 8)

Revision ID: dispatch_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "dispatch_0004"
down_revision = "dispatch_0003"


def upgrade() -> None:
    op.create_table(
        "determination_positions",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("party", sa.String(60), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("lead_unit_id", sa.String(40), nullable=False),
        sa.Column("co_unit_ids", sa.JSON, nullable=False),
        sa.Column("opinion", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("determination_positions")
