"""dispatch: positions of the parties to a joint determination (Art 8); the units'
responsible staff and the work order's assignee (Art 4); return ids as UUIDs

Revision ID: dispatch_0004
"""

import uuid

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
    op.create_table(
        "unit_staff",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("duties", sa.JSON, nullable=False),
        sa.Column("deputy", sa.Boolean, nullable=False),
    )
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("assignee", sa.String(64), nullable=True))
    with op.batch_alter_table("returns") as batch:
        batch.add_column(sa.Column("return_id", sa.String(36), nullable=True))
    bind = op.get_bind()
    for (row_id,) in bind.execute(sa.text("SELECT id FROM returns WHERE return_id IS NULL")):
        bind.execute(
            sa.text("UPDATE returns SET return_id = :rid WHERE id = :id"),
            {"rid": str(uuid.uuid4()), "id": row_id},
        )
    op.create_index("ix_returns_return_id", "returns", ["return_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_returns_return_id", table_name="returns")
    with op.batch_alter_table("returns") as batch:
        batch.drop_column("return_id")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("assignee")
    op.drop_table("unit_staff")
    op.drop_table("determination_positions")
