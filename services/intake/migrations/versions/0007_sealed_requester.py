"""intake: requester name, phone and ID number sealed at rest, the phone found through a
keyed blind index (Art 28, 29); existing rows are sealed under the current key

Revision ID: intake_0007
"""

import sqlalchemy as sa
from alembic import op

from services.intake.sealed import seal_requester
from shared.settings import get_settings

revision = "intake_0007"
down_revision = "intake_0006"
BATCH = 1000


def upgrade() -> None:
    for name in ("requester_name_sealed", "requester_phone_sealed", "requester_id_number_sealed"):
        op.add_column("tickets", sa.Column(name, sa.Text, nullable=True))
    op.add_column("tickets", sa.Column("requester_phone_index", sa.String(32), nullable=True))
    _seal_plain_rows()
    op.drop_index("ix_tickets_phone_matter", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("requester_name")
        batch.drop_column("requester_phone")
    # duplicate hints and a phone's tickets: the same phone (its index) and matter
    op.create_index(
        "ix_tickets_phone_matter",
        "tickets",
        ["requester_phone_index", "matter_code", "registered_at"],
    )


def _seal_plain_rows() -> None:
    ring = get_settings().requester_key_ring()  # refuses a development ring in production
    t = sa.table(
        "tickets",
        sa.column("id", sa.Integer),
        sa.column("requester_name", sa.String),
        sa.column("requester_phone", sa.String),
        sa.column("requester_name_sealed", sa.Text),
        sa.column("requester_phone_sealed", sa.Text),
        sa.column("requester_phone_index", sa.String),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(t.c.id, t.c.requester_name, t.c.requester_phone)
            .where(
                t.c.id > last,
                sa.or_(t.c.requester_name.is_not(None), t.c.requester_phone.is_not(None)),
            )
            .order_by(t.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        sealed = [
            (r.id, seal_requester(ring, r.requester_name, r.requester_phone, None)) for r in rows
        ]
        bind.execute(
            t.update()
            .where(t.c.id == sa.bindparam("pk"))
            .values(
                requester_name_sealed=sa.bindparam("name"),
                requester_phone_sealed=sa.bindparam("phone"),
                requester_phone_index=sa.bindparam("phone_index"),
            ),
            [
                {
                    "pk": pk,
                    "name": values["requester_name_sealed"],
                    "phone": values["requester_phone_sealed"],
                    "phone_index": values["requester_phone_index"],
                }
                for pk, values in sealed
            ],
        )
        last = rows[-1].id
