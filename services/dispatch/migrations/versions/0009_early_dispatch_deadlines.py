"""dispatch: the SLA's dispatch deadlines that arrive before their ticket's registration
(``early_dispatch_deadlines``). sla.deadline_set of the dispatch clock and ticket.registered
travel on different topics, so dispatch may hear of the deadline first: it waits here, and
the registration that opens the work order takes it (and removes it), instead of an update
that finds no work order and loses the deadline.

Revision ID: dispatch_0009
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "dispatch_0009"
down_revision = "dispatch_0008"


def upgrade() -> None:
    op.create_table(
        "early_dispatch_deadlines",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("deadline", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("early_dispatch_deadlines")
