"""intake: attachments, answers on the spot, call ratings, flags, the status read model,
search terms, policy versions and the requester-data audit log

Revision ID: intake_0002
"""

import sqlalchemy as sa
from alembic import op

from services.intake.domain import DEFAULT_POLICY, DEFAULT_POLICY_EFFECTIVE_FROM, search_terms
from shared.db import UTCDateTime

revision = "intake_0002"
down_revision = "intake_0001"

NEW_TICKET_COLUMNS = (
    ("attachments", sa.JSON),
    ("flagged_keywords", sa.JSON),
    ("answer", sa.Text),
    ("knowledge_entry_ids", sa.JSON),
    ("answered_at", UTCDateTime),
    ("answered_by", sa.String(64)),
    ("call_rating", sa.String(24)),
    ("call_rated_at", UTCDateTime),
    ("call_rated_by", sa.String(64)),
    ("reply", sa.JSON),
    ("completed_at", UTCDateTime),
    ("status_at", UTCDateTime),
)
BACKFILL_BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    for name, type_ in NEW_TICKET_COLUMNS:
        op.add_column("tickets", sa.Column(name, type_, nullable=True))
    if bind.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("tickets", "status", type_=sa.String(24))
    # operators' queue: flagged first, newest first; and the usual filters
    op.create_index("ix_tickets_queue", "tickets", ["flagged", "registered_at"])
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_index("ix_tickets_matter", "tickets", ["matter_code"])
    op.create_index("ix_tickets_district", "tickets", ["district"])
    # duplicate hints: the same phone and matter within a window
    op.create_index(
        "ix_tickets_phone_matter", "tickets", ["requester_phone", "matter_code", "registered_at"]
    )
    terms = op.create_table(
        "ticket_terms",
        sa.Column("term", sa.String(32), primary_key=True),
        sa.Column("ticket_pk", sa.Integer, primary_key=True),
    )
    op.create_index("ix_ticket_terms_ticket", "ticket_terms", ["ticket_pk"])
    policy = op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("effective_from", UTCDateTime, nullable=False, unique=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.bulk_insert(
        policy,
        [
            {
                "effective_from": DEFAULT_POLICY_EFFECTIVE_FROM,
                "settings": DEFAULT_POLICY,
                "created_by": "migration",
                "created_at": DEFAULT_POLICY_EFFECTIVE_FROM,
            }
        ],
    )
    op.create_table(
        "requester_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("reader_role", sa.String(20), nullable=False),
        sa.Column("read_at", UTCDateTime, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
    )
    op.create_index("ix_requester_reads_ticket", "requester_reads", ["ticket_id"])
    _backfill_terms(bind, terms)


def _backfill_terms(bind: sa.engine.Connection, terms: sa.Table) -> None:
    """Tickets registered before this revision become searchable too."""
    tickets = sa.table("tickets", sa.column("id", sa.Integer), sa.column("content", sa.Text))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(tickets.c.id, tickets.c.content)
            .where(tickets.c.id > last)
            .order_by(tickets.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        values = [
            {"term": term, "ticket_pk": row.id}
            for row in rows
            for term in search_terms(row.content)
        ]
        if values:
            bind.execute(sa.insert(terms), values)
        last = rows[-1].id


def downgrade() -> None:
    for table in ("requester_reads", "policy_versions", "ticket_terms"):
        op.drop_table(table)
    for index in (
        "ix_tickets_phone_matter",
        "ix_tickets_district",
        "ix_tickets_matter",
        "ix_tickets_status",
        "ix_tickets_queue",
    ):
        op.drop_index(index, table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name, _ in reversed(NEW_TICKET_COLUMNS):
            batch.drop_column(name)
