"""intake: on PostgreSQL two indexes of ``tickets`` that only the API's filters read go
(issue 12), each an entry every registration wrote:
- ``ix_tickets_registered_at`` (registered_at): the list filtered by registration time
  reads ``ix_tickets_queue`` (flagged, registered_at) instead, a range of its second column;
  measured at 100,000 tickets (count + page), a day's tickets 0.8 + 0.1 ms with the index
  and 1.0 + 0.1 ms without;
- ``ix_tickets_matter`` (matter_code): the filter by matter (the API's; the console has
  none) counts through ``ix_tickets_phone_matter`` (its second column) and walks the list's
  order for its page: a common matter 1.5 + 0.2 -> 6.5 + 0.3 ms, a rare one 0.0 + 0.1 ->
  3.4 + 3.0 ms.
``ix_tickets_district`` stays: the console filters by district, whose count would read the
whole table (3.8 -> 30.6 ms). SQLite keeps both (not measured there).

Revision ID: intake_0013
"""

from alembic import op

revision = "intake_0013"
down_revision = "intake_0012"

DROPPED = {"ix_tickets_registered_at": ["registered_at"], "ix_tickets_matter": ["matter_code"]}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in DROPPED:
            op.drop_index(name, table_name="tickets")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, columns in DROPPED.items():
            op.create_index(name, "tickets", columns)
