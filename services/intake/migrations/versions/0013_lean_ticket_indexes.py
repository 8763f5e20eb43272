"""intake: on PostgreSQL the registration time's index of ``tickets`` goes (issue 12), an
entry every registration wrote: the list filtered by registration time (the API's; the
console has no such filter) reads ``ix_tickets_queue`` (flagged, registered_at) instead, a
range of its second column; measured at 100,000 tickets (count + page), a day's tickets
0.8 + 0.1 ms with the index and 1.0 + 0.1 ms without. SQLite keeps it (not measured there).
``ix_tickets_matter`` stays although only the API's filter by matter reads it: without it
that filter counts through ``ix_tickets_phone_matter`` (its second column, the whole index)
and pages along the list's order, 1.5 + 0.2 -> 6.5 + 0.3 ms for a common matter and
0.0 + 0.1 -> 3.4 + 3.0 ms for a rare one at 100,000 tickets, growing with the table: an
integrator's filter would slow to a scan at a city's millions of tickets for ~5 µs of the
database a registration. ``ix_tickets_district`` stays likewise (the console's filter).

Revision ID: intake_0013
"""

from alembic import op

revision = "intake_0013"
down_revision = "intake_0012"

DROPPED = {"ix_tickets_registered_at": ["registered_at"]}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in DROPPED:
            op.drop_index(name, table_name="tickets")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, columns in DROPPED.items():
            op.create_index(name, "tickets", columns)
