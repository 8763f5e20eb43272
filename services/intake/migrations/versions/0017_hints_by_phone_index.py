"""intake: on PostgreSQL the duplicate-hint lookup can only take the phone's index (issue 12).
The lookup (a phone's tickets of a matter within a window) compared ``matter_code`` as the
API's matter filter does, so ``ix_tickets_matter`` could serve it too: on a table that had
not been analyzed (a new deployment, a bench) the planner picked between it and
``ix_tickets_phone_matter`` by ~0.01 cost units (a generic plan made at 200 tickets took the
matter's index) and then read every ticket of the matter for each ticket registered, 3-9x
dearer (160-650 µs a ticket) until autovacuum analyzed the table. Now the phone's index
holds the matter in the "C" collation and the lookup compares it so (``registration``'s
``COLLATE "C"``): an index in another collation cannot serve that comparison, so the lookup
has one index to read; equality of matter codes is byte equality in either collation, so
it finds the same tickets. ``ix_tickets_matter`` stays for the API's filter (unchanged).
SQLite keeps its indexes (it has no such planner choice to lose).

Revision ID: intake_0017
"""

from alembic import op

revision = "intake_0017"
down_revision = "intake_0016"

INDEX = "ix_tickets_phone_matter"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="tickets")
        op.execute(
            f"CREATE INDEX {INDEX} ON tickets"
            ' (requester_phone_index, matter_code COLLATE "C", registered_at)'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="tickets")
        op.create_index(INDEX, "tickets", ["requester_phone_index", "matter_code", "registered_at"])
