"""channels: Open311 GeoReport v2 — catalog read model and requests

Revision ID: channels_0003
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision = "channels_0003"
down_revision = "channels_0002"


def upgrade() -> None:
    op.create_table(
        "matters",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "open311_requests",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("token", sa.String(36), nullable=False, unique=True),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("service_code", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("address", sa.String(200)),
        sa.Column("lat", sa.String(20)),
        sa.Column("long", sa.String(20)),
        sa.Column("media_url", sa.String(2000)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("status_notes", sa.Text),
        sa.Column("agency_responsible", sa.String(100)),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("expected_at", UTCDateTime),
    )
    op.create_index("ix_open311_requests_code", "open311_requests", ["service_code"])


def downgrade() -> None:
    for table in ("open311_requests", "units", "matters"):
        op.drop_table(table)
