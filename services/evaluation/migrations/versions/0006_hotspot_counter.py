"""evaluation: each matter-and-district track keeps its latest registration times, so a
new ticket is tallied without re-reading every ticket in the window

Revision ID: evaluation_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "evaluation_0006"
down_revision = "evaluation_0005"


def upgrade() -> None:
    with op.batch_alter_table("hotspot_tracks") as batch:
        batch.add_column(sa.Column("recent", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tallied", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("hotspot_tracks") as batch:
        batch.drop_column("tallied")
        batch.drop_column("recent")
