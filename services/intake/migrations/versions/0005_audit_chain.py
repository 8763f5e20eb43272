"""intake: the requester-read audit log becomes hash-chained (tamper-evident)

Revision ID: intake_0005
"""

import sqlalchemy as sa
from alembic import op

from shared.audit import GENESIS, row_hash

revision = "intake_0005"
down_revision = "intake_0004"


def upgrade() -> None:
    with op.batch_alter_table("requester_reads") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    reads = sa.table(
        "requester_reads",
        sa.column("id", sa.Integer),
        sa.column("ticket_id", sa.String),
        sa.column("reader", sa.String),
        sa.column("reader_role", sa.String),
        sa.column("read_at", sa.DateTime(timezone=True)),
        sa.column("purpose", sa.String),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    bind = op.get_bind()
    prev = GENESIS
    rows = bind.execute(sa.select(reads).order_by(reads.c.id)).mappings().all()
    for row in rows:
        digest = row_hash(prev, dict(row))
        bind.execute(
            reads.update().where(reads.c.id == row["id"]).values(prev_hash=prev, hash=digest)
        )
        prev = digest
