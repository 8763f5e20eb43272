"""Pieces every service's Alembic environment and first migration share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def remake_index(name: str, table: str, columns: list[str], where: str | None = None) -> None:
    """Index ``name`` of ``table`` made again on ``columns``, holding the rows ``where``
    (a predicate in SQL) holds, or every row (None)."""
    op.drop_index(name, table_name=table)
    rows = None if where is None else sa.text(where)
    op.create_index(name, table, columns, postgresql_where=rows, sqlite_where=rows)


_OUTBOX_SENT = sa.text("published_at IS NOT NULL")


def index_sent_outbox_rows_by_key() -> None:
    """The outbox's index by key holds the sent rows only (issue 12): the relay's marking a
    row sent is never a HOT update (it changes the unsent rows' index predicate), so it
    writes the row's entry into every index anyway, and the entry the insert wrote into
    the key's index was one more for each event. A timeline reads the unsent rows, few
    but for a bus outage, through the unsent rows' index (``shared.service``)."""
    op.drop_index("ix_outbox_key", table_name="outbox")
    op.create_index(
        "ix_outbox_sent_key",
        "outbox",
        ["key", "id"],
        postgresql_where=_OUTBOX_SENT,
        sqlite_where=_OUTBOX_SENT,
    )


def index_all_outbox_rows_by_key() -> None:
    op.drop_index("ix_outbox_sent_key", table_name="outbox")
    create_outbox_key_index()


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


# the outbox's fill of a new page (percent): its marked versions take as much again
_OUTBOX_FILL = 45


def room_for_outbox_marks() -> None:
    """PostgreSQL: the outbox's new pages are filled to 45 percent (issue 12), so the relay's
    marking a row sent (``shared.relay``) writes the row's new version on its own page. That
    update is never HOT (``published_at`` is in the partial indexes' predicates), but on a
    full page it also wrote a lock record on the old version (heap_update lets go of the
    page to find another one), the new version whole on another page (on the same page
    only the bytes that changed go to the WAL) and touched two heap pages: ~3.9 lock
    records a ticket across the outboxes in e2e (pg_waldump of the window). Every row is
    marked once, soon after it was written, with a timestamp where NULL was (8 bytes): a
    page filled to 45 percent holds its rows' marked versions with room to spare (at 50 the
    last row of a page could miss by those bytes). The outbox keeps sent rows only for the
    retention (``OutboxRelay.prune``), so its pages cost ~2.2 times the rows, for an hour's
    events. Only a storage parameter (``room_for_hot_updates``)."""
    room_for_hot_updates("outbox", _OUTBOX_FILL)


def no_room_for_outbox_marks() -> None:
    room_for_hot_updates("outbox", None)


_INBOX = sa.table("inbox", sa.column("event_id", sa.String), sa.column("processed_at", UTCDateTime))
_INBOX_PROCESSED_AT = "ix_inbox_processed_at"


def drop_inbox_processed_at() -> None:
    """The inbox's retention counts from when an event was made, read from its id (issue 12,
    the lead's decision): an event id is a UUID v7 whose first 48 bits are the millisecond
    it was made, so the primary key (consumer, event_id) is in that order and the pruner
    deletes a range of it (``Database.prune_inbox``). ``processed_at`` and its index
    ``ix_inbox_processed_at``, which only the pruner read, go: the index took an entry for
    every event every consumer claimed (~9 of a ticket's ~139 WAL records).

    An id that is not a v7 (its version nibble, the 15th character, is not 7: made before
    event ids were v7, commit ed4c16e of 2026-12-03, or by a producer of its own) tells no
    time: by its random bits it sorts before the pruner's cutoff (a v4 about one time in
    160; it goes at the next pass, however recent) or, nearly always, after it, and stays.
    So, while ``processed_at`` is still there, those handled longer ago than the retention
    go now, once, by the old rule; those handled within it stay, nearly all for good: a
    bounded leftover of one retention's worth of events from before v7 ids, and none where
    v7 ids have been made for longer than the retention."""
    from shared.settings import get_settings  # the setting the starting service runs with

    retention = timedelta(seconds=get_settings().inbox_retention_seconds)
    op.execute(
        sa.delete(_INBOX).where(
            sa.func.substr(_INBOX.c.event_id, 15, 1) != "7",
            _INBOX.c.processed_at < datetime.now(UTC) - retention,
        )
    )
    # made by Database.migrate after the migrations, so a new database has none yet
    op.drop_index(_INBOX_PROCESSED_AT, table_name="inbox", if_exists=True)
    op.drop_column("inbox", "processed_at")


def add_inbox_processed_at() -> None:
    """Back to pruning by when an event was handled: the rows there count as handled now,
    so none is forgotten sooner than the retention after the downgrade."""
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("processed_at", UTCDateTime, nullable=True))
    op.execute(sa.update(_INBOX).values(processed_at=datetime.now(UTC)))
    with op.batch_alter_table("inbox") as batch:
        batch.alter_column("processed_at", existing_type=UTCDateTime, nullable=False)
    op.create_index(_INBOX_PROCESSED_AT, "inbox", ["processed_at"])


def inbox_ids_compared_bytewise() -> None:
    """PostgreSQL: the inbox's two columns compare by their bytes (``COLLATE "C"``) instead
    of the database's collation (issue 12). Every event a consumer claims is an entry in
    the primary key, placed by a dozen comparisons of event ids that share their first
    characters (a UUID v7 starts with the time it was made); with a libc collation other
    than C each one went through ``strcoll``. The order is the same for these ids (ASCII:
    digits, letters, hyphens), so the pruning's range of ids made before a time
    (``Database.prune_inbox``) reads the same rows. Only ``shared.db`` reads the inbox,
    never joined with another table's ids. The primary key is rebuilt (the table is not
    rewritten)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        'ALTER TABLE inbox ALTER COLUMN consumer TYPE varchar(64) COLLATE "C",'
        ' ALTER COLUMN event_id TYPE varchar(36) COLLATE "C"'
    )


def inbox_ids_compared_by_default() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        'ALTER TABLE inbox ALTER COLUMN consumer TYPE varchar(64) COLLATE "default",'
        ' ALTER COLUMN event_id TYPE varchar(36) COLLATE "default"'
    )
