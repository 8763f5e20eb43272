"""intake: on PostgreSQL the ticket numbers' unique index goes (issue 12), an entry every
registration wrote: a number is its ticket's serial after the registration day's prefix
(``domain.ticket_number``; the serial is the row's primary key), so every read by number
finds the row through the primary key and compares the whole number
(``models.numbered``). The numbers stay unique as the serials are: each is made of its own
ticket's (the batch statement's from the serials taken for it, the one-by-one insert's in
the statement from the row's own). SQLite keeps its index (not measured there).

Revision ID: intake_0016
"""

from alembic import op

revision = "intake_0016"
down_revision = "intake_0015"

# the unique constraint ``ticket_id``'s ``unique=True`` made in intake_0001 (PostgreSQL's
# name for it)
NUMBERS_KEY = "tickets_ticket_id_key"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(NUMBERS_KEY, "tickets", type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint(NUMBERS_KEY, "tickets", ["ticket_id"])
