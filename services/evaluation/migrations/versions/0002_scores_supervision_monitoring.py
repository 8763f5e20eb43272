"""evaluation: re-handling decisions, exemptions, read models for scores, supervision,
hotspots, social supervisors' opinions, policy versions

Revision ID: evaluation_0002
"""

import sqlalchemy as sa
from alembic import op

from services.evaluation.domain import DEFAULT_POLICY, DEFAULT_POLICY_EFFECTIVE_FROM
from shared.calendar import Period, WorkingCalendar
from shared.db import UTCDateTime

revision = "evaluation_0002"
down_revision = "evaluation_0001"


def upgrade() -> None:
    with op.batch_alter_table("revisits") as batch:
        batch.add_column(sa.Column("due_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("decision", sa.String(20), nullable=True))
        batch.add_column(sa.Column("decision_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decided_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("closed_at", UTCDateTime, nullable=True))
    _migrate_revisits()
    op.create_index("ix_revisits_state_due", "revisits", ["state", "due_at"])
    op.create_index("ix_revisits_recorded", "revisits", ["recorded_at"])

    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("type", sa.String(20), nullable=True),
        sa.Column("urgency", sa.String(20), nullable=True),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("matter_code", sa.String(40), nullable=True),
        sa.Column("district", sa.String(12), nullable=True),
        sa.Column("registered_at", UTCDateTime, nullable=True),
        sa.Column("unit_id", sa.String(40), nullable=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("flagged_at", UTCDateTime, nullable=True),
        sa.Column("flag_keywords", sa.JSON, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=True),
    )
    # the hotspot window count: one matter, one district, a time range
    op.create_index(
        "ix_tickets_matter_district_time", "tickets", ["matter_code", "district", "registered_at"]
    )
    op.create_index("ix_tickets_flagged", "tickets", ["flagged", "flagged_at"])

    op.create_table(
        "handlings",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("dispatch_no", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("matter_code", sa.String(40), nullable=False),
        sa.Column("district", sa.String(12), nullable=False),
        sa.Column("dispatched_at", UTCDateTime, nullable=False),
        sa.Column("accepted_at", UTCDateTime, nullable=True),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.Column("returned_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_handlings_dispatched", "handlings", ["dispatched_at"])
    op.create_index("ix_handlings_accepted", "handlings", ["accepted_at"])

    op.create_table(
        "sla_clocks",
        sa.Column("ticket_id", sa.String(32), primary_key=True),
        sa.Column("clock", sa.String(20), primary_key=True),
        sa.Column("round", sa.Integer, primary_key=True),
        sa.Column("unit_key", sa.String(40), primary_key=True),
        sa.Column("deadline", UTCDateTime, nullable=True),
        sa.Column("overdue_at", UTCDateTime, nullable=True),
        sa.Column("late_seconds", sa.Float, nullable=True),
    )

    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(40), nullable=True),
        sa.Column("district", sa.String(12), nullable=True),
        sa.Column("parent_id", sa.String(40), nullable=True),
        sa.Column("functional", sa.Boolean, nullable=False),
    )

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
        "exemptions",
        sa.Column("exemption_id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.String(40), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("filed_by", sa.String(64), nullable=False),
        sa.Column("filed_at", UTCDateTime, nullable=False),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        # Art 24: one explanation per rating
        sa.UniqueConstraint("ticket_id", "round", name="uq_exemption_rating"),
    )
    op.create_index("ix_exemptions_state", "exemptions", ["state", "filed_at"])
    op.create_table(
        "exemption_files",
        sa.Column("file_id", sa.String(36), primary_key=True),
        sa.Column("exemption_id", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_as", sa.String(300), nullable=False),
    )
    op.create_index("ix_exemption_files_exemption", "exemption_files", ["exemption_id"])

    op.create_table(
        "supervisions",
        sa.Column("supervision_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ticket_id", sa.String(32), nullable=True),
        sa.Column("subject_unit_id", sa.String(40), nullable=True),
        sa.Column("unit_id", sa.String(40), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        # one supervision per escalation (ticket, clock, round, level), however often told
        sa.Column("escalation_key", sa.String(120), nullable=True, unique=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("answered_by", sa.String(64), nullable=True),
        sa.Column("answered_at", UTCDateTime, nullable=True),
        sa.Column("close_note", sa.Text, nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("closed_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_supervisions_state", "supervisions", ["state", "opened_at"])
    op.create_index("ix_supervisions_unit", "supervisions", ["unit_id"])

    op.create_table(
        "hotspots",
        sa.Column("hotspot_id", sa.String(36), primary_key=True),
        sa.Column("matter_code", sa.String(40), nullable=False),
        sa.Column("district", sa.String(12), nullable=False),
        sa.Column("window", sa.String(10), nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("first_registered_at", UTCDateTime, nullable=False),
        sa.Column("last_registered_at", UTCDateTime, nullable=False),
        sa.Column("active_until", UTCDateTime, nullable=False),
        sa.Column("ticket_count", sa.Integer, nullable=False),
        sa.Column("detected_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_hotspots_active_until", "hotspots", ["active_until"])
    op.create_table(
        "hotspot_tickets",
        sa.Column("hotspot_id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(32), primary_key=True),
    )
    op.create_table(
        "hotspot_tracks",
        sa.Column("matter_code", sa.String(40), primary_key=True),
        sa.Column("district", sa.String(12), primary_key=True),
        sa.Column("hotspot_id", sa.String(36), nullable=True),
        sa.Column("active_until", UTCDateTime, nullable=True),
    )

    op.create_table(
        "opinions",
        sa.Column("opinion_id", sa.String(36), primary_key=True),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("submitted_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("answered_by", sa.String(64), nullable=True),
        sa.Column("answered_at", UTCDateTime, nullable=True),
    )


def _migrate_revisits() -> None:
    """0001 knew only open / rated / not_required and no due time: give every revisit its
    due time and split ``rated`` into the states of Art 14."""
    revisits = sa.table(
        "revisits",
        sa.column("ticket_id", sa.String),
        sa.column("round", sa.Integer),
        sa.column("completed_at", UTCDateTime),
        sa.column("due_at", UTCDateTime),
        sa.column("state", sa.String),
        sa.column("rating", sa.String),
        sa.column("recorded_at", UTCDateTime),
        sa.column("closed_at", UTCDateTime),
    )
    bind = op.get_bind()
    calendar = WorkingCalendar()
    due_period = Period.parse(DEFAULT_POLICY["revisit_due"])
    for row in bind.execute(sa.select(revisits)).all():
        values: dict[str, object] = {
            "due_at": calendar.add(row.completed_at, due_period).at,
        }
        if row.state == "rated":
            first_dissatisfied = row.rating == "dissatisfied" and row.round < 2
            values["state"] = "awaiting_decision" if first_dissatisfied else "closed"
            values["closed_at"] = None if first_dissatisfied else row.recorded_at
        elif row.state == "not_required":
            values["closed_at"] = row.completed_at
        bind.execute(
            sa.update(revisits)
            .where(revisits.c.ticket_id == row.ticket_id, revisits.c.round == row.round)
            .values(**values)
        )


def downgrade() -> None:
    for table in (
        "opinions",
        "hotspot_tracks",
        "hotspot_tickets",
        "hotspots",
        "supervisions",
        "exemption_files",
        "exemptions",
        "policy_versions",
        "units",
        "sla_clocks",
        "handlings",
        "tickets",
    ):
        op.drop_table(table)
    op.drop_index("ix_revisits_recorded", "revisits")
    op.drop_index("ix_revisits_state_due", "revisits")
    with op.batch_alter_table("revisits") as batch:
        for column in ("closed_at", "decided_at", "decided_by", "decision_reason", "decision"):
            batch.drop_column(column)
        batch.drop_column("due_at")
