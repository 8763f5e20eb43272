"""knowledge: index the outbox by key, for ticket timelines

Revision ID: knowledge_0003
"""

from alembic import op

from shared.migrations import create_outbox_key_index

revision = "knowledge_0003"
down_revision = "knowledge_0002"


def upgrade() -> None:
    create_outbox_key_index()


def downgrade() -> None:
    op.drop_index("ix_outbox_key", table_name="outbox")
