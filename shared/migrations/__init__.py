"""Pieces every service's Alembic environment and first migration share."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from shared.db import UTCDateTime


def run_env() -> None:
    """Body of each service's ``migrations/env.py``: migrate on the connection that
    ``Database.migrate`` hands over (inside its transaction and advisory lock)."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def create_outbox_and_inbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", UTCDateTime, nullable=False),
    )


def create_outbox_key_index() -> None:
    """The outbox doubles as each service's log of what it said about a ticket (the
    gateway's timeline reads it by key)."""
    op.create_index("ix_outbox_key", "outbox", ["key", "id"])


# the unique key on the outbox's event id as create_outbox_and_inbox made it (PostgreSQL's
# name for it; on SQLite, where it has none, batch mode reflects it under the same name)
_OUTBOX_EVENT_ID_KEY = "outbox_event_id_key"
_NAMED_AS_ON_POSTGRESQL = {"uq": "%(table_name)s_%(column_0_name)s_key"}


def drop_outbox_event_id_key() -> None:
    """The outbox's event ids lose their unique key: no query looks a row up by its event
    id, and each id is made new (``event_uuid``: a UUID v7, 74 random bits) for the one row
    that carries it. The key was one more index entry for each row written and for each
    row the relay marks sent (that update is not HOT), and a look into the index for each
    row inserted. A consumer still handles an event once: its inbox is keyed by the id."""
    with op.batch_alter_table("outbox", naming_convention=_NAMED_AS_ON_POSTGRESQL) as batch:
        batch.drop_constraint(_OUTBOX_EVENT_ID_KEY, type_="unique")


def add_outbox_event_id_key() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.create_unique_constraint(_OUTBOX_EVENT_ID_KEY, ["event_id"])


def room_for_hot_updates(table: str, fillfactor: int | None) -> None:
    """PostgreSQL: fill the table's new pages only to ``fillfactor`` percent (None: back to
    the default, full pages), so a row updated without a change to any indexed column gets
    its new version on its own page (a HOT update: no index entry written). A consumer
    updates a batch of rows that were inserted together, on the same pages, in one
    transaction: each page needs room for a new version of each of its rows, hence 50.
    Rows already written keep their pages; the change only sets a storage parameter
    (SHARE UPDATE EXCLUSIVE lock: reads and writes go on, no rewrite)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    if fillfactor is None:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    else:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {int(fillfactor)})")
