"""dispatch: the work phone of a unit's named staff, which notifications reach (Art 4)

Revision ID: dispatch_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "dispatch_0006"
down_revision = "dispatch_0005"


def upgrade() -> None:
    op.add_column("unit_staff", sa.Column("phone", sa.String(20), nullable=True))


def downgrade() -> None:
    op.drop_column("unit_staff", "phone")
