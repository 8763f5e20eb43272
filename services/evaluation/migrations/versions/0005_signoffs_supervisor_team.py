"""evaluation: the department's sign-off of each period's evaluation (Art 23) and its
social supervisor team (Art 22)

Revision ID: evaluation_0005
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "evaluation_0005"
down_revision = "evaluation_0004"


def upgrade() -> None:
    op.create_table(
        "score_signoffs",
        sa.Column("period_from", sa.Date, primary_key=True),
        sa.Column("period_to", sa.Date, primary_key=True),
        sa.Column("ranking", sa.JSON, nullable=False),
        sa.Column("weights", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("signed_by", sa.String(64), nullable=False),
        sa.Column("signed_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "social_supervisors",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("affiliation", sa.String(200), nullable=True),
        sa.Column("term_until", sa.Date, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("appointed_by", sa.String(64), nullable=False),
        sa.Column("appointed_at", UTCDateTime, nullable=False),
        sa.Column("dismissed_by", sa.String(64), nullable=True),
        sa.Column("dismissed_at", UTCDateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("social_supervisors")
    op.drop_table("score_signoffs")
