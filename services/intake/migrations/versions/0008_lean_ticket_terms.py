"""intake: cheaper search-term writes (issue 12). A ticket writes about 22 terms, each a
row and an entry in every index of ``ticket_terms``:
- ``ix_ticket_terms_ticket`` (ticket_pk) goes: no query reads it (search and count look
  terms up in the primary key (term, ticket_pk), a ticket's own words too);
- on PostgreSQL the term compares byte by byte (COLLATE "C") instead of through the
  database's locale: terms are only ever compared for equality, which the two agree on
  (both deterministic), and the primary key's inserts and look-ups get cheaper.

Revision ID: intake_0008
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0008"
down_revision = "intake_0007"


def upgrade() -> None:
    op.drop_index("ix_ticket_terms_ticket", table_name="ticket_terms")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("ticket_terms", "term", type_=sa.String(32, collation="C"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("ticket_terms", "term", type_=sa.String(32))
    op.create_index("ix_ticket_terms_ticket", "ticket_terms", ["ticket_pk"])
