"""dispatch: catalog versions, policy, co-units, returns, determinations, replies,
deadline read model, flags and suggestion statistics

Revision ID: dispatch_0002
"""

import sqlalchemy as sa
from alembic import op

from services.dispatch.domain.policy import DEFAULT_POLICY, DEFAULT_POLICY_EFFECTIVE_FROM
from shared.db import UTCDateTime

revision = "dispatch_0002"
down_revision = "dispatch_0001"


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("updated_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("matters") as batch:
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("effective_from", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("updated_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("updated_by", sa.String(64), nullable=True))
        batch.alter_column(
            "catalog_version", type_=sa.String(64), existing_type=sa.String(20), nullable=False
        )
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("dispatch_no", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("determined", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("content", sa.Text, nullable=True))
        batch.add_column(sa.Column("address", sa.Text, nullable=True))
        batch.add_column(sa.Column("dispatch_deadline", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("acceptance_deadline", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("completion_deadline", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deadline_source", sa.String(10), nullable=True))
        batch.add_column(sa.Column("suggestion", sa.JSON, nullable=True))
    op.execute("UPDATE assignments SET dispatch_no = 1 WHERE dispatched_at IS NOT NULL")
    op.create_index("ix_assignments_state", "assignments", ["state"])

    op.create_table(
        "co_units",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("unit_id", sa.String(40), primary_key=True),
    )
    op.create_index("ix_co_units_unit", "co_units", ["unit_id"])
    op.create_table(
        "co_unit_inputs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False, index=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "returns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False, index=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("dispatch_no", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("basis", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("decision_note", sa.Text, nullable=True),
        sa.UniqueConstraint("ticket_id", "dispatch_no", name="uq_returns_ticket_dispatch"),
    )
    op.create_index("ix_returns_status", "returns", ["status"])
    op.create_table(
        "determinations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("candidate_unit_ids", sa.JSON, nullable=False),
        sa.Column("referred_by", sa.String(64), nullable=False),
        sa.Column("referred_at", UTCDateTime, nullable=False),
        sa.Column("referral_reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("lead_unit_id", sa.String(40), nullable=True),
        sa.Column("co_unit_ids", sa.JSON, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_role", sa.String(20), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_determinations_status", "determinations", ["status"])
    op.create_table(
        "replies",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("reply", sa.JSON, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "flags",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("flagged_at", UTCDateTime, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
    )
    op.create_table(
        "term_stats",
        sa.Column("term", sa.String(40), primary_key=True),
        sa.Column("matter_code", sa.String(32), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "unit_stats",
        sa.Column("matter_code", sa.String(32), primary_key=True),
        sa.Column("district", sa.String(12), primary_key=True),
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "catalog_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("label", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("effective_from", UTCDateTime, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=True),
    )
    policy = op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("effective_from", UTCDateTime, nullable=False, unique=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        policy,
        [
            {
                "effective_from": DEFAULT_POLICY_EFFECTIVE_FROM,
                "settings": DEFAULT_POLICY,
                "created_by": "migration",
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "policy_versions",
        "catalog_versions",
        "unit_stats",
        "term_stats",
        "flags",
        "replies",
        "determinations",
        "returns",
        "co_unit_inputs",
        "co_units",
    ):
        op.drop_table(table)
    op.drop_index("ix_assignments_state", "assignments")
    with op.batch_alter_table("assignments") as batch:
        for column in (
            "suggestion",
            "deadline_source",
            "completion_deadline",
            "acceptance_deadline",
            "dispatch_deadline",
            "address",
            "content",
            "flagged",
            "determined",
            "dispatch_no",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("matters") as batch:
        for column in ("updated_by", "updated_at", "effective_from", "version"):
            batch.drop_column(column)
    with op.batch_alter_table("units") as batch:
        for column in ("updated_at", "active"):
            batch.drop_column(column)
