"""knowledge: the tickets completed or closed, which alone may become cases (Art 25)

Revision ID: knowledge_0006
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "knowledge_0006"
down_revision = "knowledge_0005"


def upgrade() -> None:
    op.create_table(
        "finished_tickets",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("finished_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("finished_tickets")
