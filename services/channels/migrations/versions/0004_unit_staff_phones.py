"""channels: the work phones of each unit's named staff, told of its work orders (Art 4)

Revision ID: channels_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "channels_0004"
down_revision = "channels_0003"


def upgrade() -> None:
    op.create_table(
        "unit_staff_phones",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("phones", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("unit_staff_phones")
