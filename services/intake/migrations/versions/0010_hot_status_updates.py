"""intake: on PostgreSQL a ticket's status update (dispatch's and evaluation's events set
``status``, ``lead_unit_id``, ``status_at``) is a HOT update (issue 12): the row's new
version goes on its own page and no index of ``tickets`` gets an entry, where each update
used to add one to all eight. That takes two things:
- no index on a column the update sets: ``ix_tickets_status`` goes. The operators' list
  filtered by status walks ``ix_tickets_queue`` for its page, as the filters by type,
  channel and urgency do; only its count reads the table instead of the index;
- room on the page for the new versions (fillfactor 50, see shared.migrations): dispatch's
  events come in batches of consecutive tickets, which share pages.
SQLite has no HOT updates (an update there rewrites only the indexes of the columns it
sets): its tickets keep the status index.

Revision ID: intake_0010
"""

from alembic import op

from shared.migrations import room_for_hot_updates

revision = "intake_0010"
down_revision = "intake_0009"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tickets_status", table_name="tickets")
    room_for_hot_updates("tickets", 50)


def downgrade() -> None:
    room_for_hot_updates("tickets", None)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_tickets_status", "tickets", ["status"])
