"""sla: the unit's explanation of an approved extension to the requester (Art 12)

Revision ID: sla_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "sla_0004"
down_revision = "sla_0003"


def upgrade() -> None:
    with op.batch_alter_table("extensions") as batch:
        batch.add_column(sa.Column("explained_via", sa.String(20), nullable=True))
        batch.add_column(sa.Column("explained_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("explanation", sa.JSON, nullable=True))
        batch.add_column(sa.Column("explanation_recorded_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("explanation_recorded_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("extensions") as batch:
        for name in (
            "explained_via",
            "explained_at",
            "explanation",
            "explanation_recorded_by",
            "explanation_recorded_at",
        ):
            batch.drop_column(name)
