"""intake: the lead unit of each ticket (from dispatch), for its Art 13 read of the requester

Revision ID: intake_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0006"
down_revision = "intake_0005"


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("lead_unit_id", sa.String(40), nullable=True))
