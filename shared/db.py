"""Database access: one engine per service, its own schema (PostgreSQL) or file (SQLite),
Alembic migrations applied at start, and the unit of work that writes state and outbox
events in one transaction."""

from __future__ import annotations

import asyncio
import zlib
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    any_,
    bindparam,
    case,
    column,
    delete,
    event,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse

from shared.errors import is_database_outage
from shared.events import Envelope, Outgoing
from shared.events.base import first_event_uuid


def _stop_once(stop: Callable[[aiosqlite.Connection], asyncio.Future[Any] | None]) -> Any:
    """aiosqlite >= 0.22 with SQLAlchemy's pool: a task cancelled while it holds a SQLite
    connection has the pool close it gracefully in a shielded task and, cancelled, stop it
    by force (``stop()``: the worker thread ends). The graceful ``close()`` then stops it a
    second time in its ``finally`` and awaits an answer from the thread that has ended:
    forever, so the loop's shutdown (``make run``'s, a test's) hung (upstream:
    wapiti-scanner/wapiti#802). A connection already stopped is not stopped again."""

    def stop_once(conn: aiosqlite.Connection) -> asyncio.Future[Any] | None:
        if not conn._running:  # noqa: SLF001 - set False by the first stop() only
            return None
        return stop(conn)

    return stop_once


aiosqlite.Connection.stop = _stop_once(aiosqlite.Connection.stop)  # type: ignore[method-assign]

E = TypeVar("E", bound=ColumnElement[Any])


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("topic", String(100), nullable=False),
        Column("key", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    )


def inbox_table(metadata: MetaData) -> Table:
    """The event ids a consumer has handled. Kept for a retention period counted from when
    each event was made (``prune_inbox``): long enough that the bus can no longer deliver
    the event again, so the table holds a window of recent events instead of every event
    ever. An event id is a UUID v7 that starts with the time it was made, so the primary
    key is in that order too and the pruning reads it: no index or column of its own
    (``shared.migrations.drop_inbox_processed_at``)."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(64), primary_key=True),
        Column("event_id", String(36), primary_key=True),
    )


def event_history_table(metadata: MetaData) -> Table:
    """Sent outbox rows outlive the outbox here: the retention job moves them (shared/relay.py
    ``prune_outbox``), and a ticket's timeline reads this history plus what the outbox
    still holds. Only what a timeline needs is kept (the key and the envelope)."""
    return Table(
        "event_history",
        metadata,
        Column("outbox_id", Integer, primary_key=True, autoincrement=False),
        Column("key", String(64), nullable=False, index=True),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
    )


# the ``event_type`` of a dead letter that is a message the bus could not read as an event
UNPARSEABLE = "unparseable"


def dead_letter_table(metadata: MetaData) -> Table:
    """Events a consumer parked: its handler failed ``consumer_max_attempts`` times, or an
    earlier event of the same key is parked (``behind``), or the message is not an event
    at all (``event_type`` ``UNPARSEABLE``: ``payload`` holds its raw bytes and where it
    was). The spine's own table, created by ``Database.migrate`` in every service (not by a
    service's migrations)."""
    return Table(
        "dead_letters",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("consumer", String(64), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("topic", String(100), nullable=False),
        Column("key", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("behind", Integer, nullable=True),  # the parked event this one waits for
        Column("state", String(16), nullable=False),  # parked · retried · discarded
        Column("first_failed_at", UTCDateTime, nullable=False),
        Column("last_failed_at", UTCDateTime, nullable=False),
        Column("resolved_at", UTCDateTime, nullable=True),
        Column("resolved_by", String(64), nullable=True),
        Index("ix_dead_letters_parked", "consumer", "key", "state"),
        UniqueConstraint("consumer", "event_id", name="uq_dead_letters_event"),
    )


def insert_ignoring_duplicates(conn: AsyncConnection | Connection, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


async def insert_new(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *returning: Column[Any],
    all_new: bool = False,
    some_there: bool = False,
) -> list[Any]:
    """Many rows in one INSERT … ON CONFLICT DO NOTHING; ``returning`` (columns of
    ``table``) of those inserted (a set-based consumer learns which events were new
    facts). Every row names the same columns.

    ``all_new`` (a ``UnitOfWork``'s ``new_facts``): on PostgreSQL a plain INSERT, which a
    row already there fails with a unique violation (``refused_by_a_key``), spoiling the
    transaction. ``ON CONFLICT DO NOTHING`` is a speculative insertion: a look into the
    unique key before each row, a lock of its own and a second WAL record to confirm the
    row, 1.5–2.4 us of PostgreSQL's CPU a row more than the plain insert.

    ``some_there`` with ``all_new``: a row may be there already as a matter of course (a
    ticket's row made by whichever of its events came first): the plain INSERT takes only
    the rows whose primary key is not there (a look into the key, as the speculative
    insertion's, without its lock and confirming record); one written meanwhile by a
    transaction not yet committed when the statement began still fails the INSERT.

    On PostgreSQL the rows travel as one array per column, or one value for a column
    they all hold alike (INSERT … SELECT … FROM unnest(…): ``given_rows``): the
    statement's text is the same for any number of rows and whichever columns are alike,
    so each connection prepares it once (a VALUES list is a new statement for every
    length)."""
    if not rows:
        return []
    stmt: Any
    params: Any
    if conn.dialect.name == "postgresql":
        columns = tuple(rows[0])
        stmt = _insert_from_arrays(
            table,
            columns,
            tuple(c.key for c in returning),
            ignore_duplicates=not all_new,
            absent_only=all_new and some_there,
        )
        params = _row_values(_same_names(columns), rows)
        if not returning:
            await _execute_built(conn, stmt, params)
            return []
        return await fetch_rows(conn, stmt, params)
    stmt, params = insert_ignoring_duplicates(conn, table), list(rows)
    if returning:
        stmt = stmt.returning(*returning)
    result = await conn.execute(stmt, params)
    return list(result.all()) if returning else []


def inserts_all_or_none(conn: AsyncConnection, all_new: bool) -> bool:
    """Whether ``insert_new(conn, …, all_new=all_new)`` writes every row it is given or
    fails (a plain INSERT, PostgreSQL): then its ``returning`` would tell nothing."""
    return all_new and conn.dialect.name == "postgresql"


async def update_many(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *where: ColumnElement[bool],
    merge: Mapping[str, ColumnElement[Any]] | None = None,
) -> None:
    """One UPDATE for many rows: each row names its key columns ``keys`` and the values
    to set; every row sets the same columns; ``where`` narrows every row's update (it may
    compare with a row's value to set, as ``bindparam("v_<column>")``). ``merge`` sets
    some columns to what the stored value and the row's make together instead of the
    row's value (``table.c.n + bindparam("v_n")``: a counter that adds the row's). Give a
    ``where`` and a ``merge`` built once (a module's constants): the statement is built
    and compiled once for each, as for each table and columns.

    On PostgreSQL one statement joins the table to the rows, sent as one array per column
    or one value for a column they all hold alike (UPDATE … FROM unnest(…):
    ``given_rows``): one execution and one plan for the batch, and the same text for any
    number of rows and whichever columns are alike, prepared once per connection.
    Elsewhere, and when two rows name the same key (the second must see the first's
    effect), one execution per row in one round trip (executemany)."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c not in keys)
    named = _update_names(tuple(keys), columns)
    merged = tuple((merge or {}).items())
    if conn.dialect.name == "postgresql" and _distinct(rows, keys):
        stmt = _update_from_arrays_once(table, tuple(keys), columns, where, merged)
        await _execute_built(conn, stmt, _row_values(named, rows))
        return
    stmt = (
        update(table)
        .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys), *where)
        .values({c: bindparam(f"v_{c}") for c in columns} | dict(merged))
    )
    await conn.execute(stmt, [{name: r[c] for name, c in named.items()} for r in rows])


async def upsert_many(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    changes: Sequence[str],
) -> None:
    """Many rows in one INSERT … ON CONFLICT (``keys``) DO UPDATE: a row whose key is new
    goes in whole; one whose key is there sets only its ``changes`` columns. One statement
    (and no second version of a row just inserted) where ``insert_new`` of the rows and
    ``update_many`` of their changes are two. Every row names the same columns, no two
    rows the same key (a row cannot be changed twice by one statement); ``keys`` are the
    columns of the table's primary key or of a unique constraint.

    On PostgreSQL the rows travel as with ``insert_new``."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # the keys first: the first column always travels as an array (``given_rows``)
        columns = (*keys, *(c for c in rows[0] if c not in keys))
        stmt = _upsert_from_arrays(table, columns, tuple(keys), tuple(changes))
        await _execute_built(conn, stmt, _row_values(_same_names(columns), rows))
        return
    insert_ = sqlite.insert(table)
    stmt = insert_.on_conflict_do_update(
        index_elements=list(keys), set_={c: insert_.excluded[c] for c in changes}
    )
    await conn.execute(stmt, list(rows))


def one_of(conn: AsyncConnection, column: ColumnElement[Any], values: Iterable[Any]) -> Any:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: the same statement text
    for any number of values, prepared once per connection (an IN list is a new statement
    for every length: compiled, prepared and cached again)."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        array = postgresql.ARRAY(column.type, dimensions=1)
        return column == any_(bindparam(None, values, type_=array))
    return column.in_(values)


def in_list(column: ColumnElement[Any], name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``column IN :name`` for a statement built once (per dialect) and run with
    ``fetch_rows``, the parameter ``name`` a list: on PostgreSQL ``= ANY(array)`` (one
    text for any number of values, as ``one_of``), elsewhere an expanding ``IN``.

    Texts on PostgreSQL go as one ``JoinedArray`` text, read by ``IN (SELECT unnest(…))``
    (split once, a hashed semi-join or a look into the key a value): the driver checked
    an array's every text against collections.abc. Not ``= ANY(ARRAY(SELECT unnest(…)))``:
    that array is an InitPlan's, not a constant, so PostgreSQL compares every row with
    each value in turn instead of hashing them. Channels' units (32 of 400, alternated
    in one process, 3 runs): client -0.39 to -0.56 us an id, backend +0.06 to +0.15 (the
    InitPlan form: backend 2.9-3x the array's)."""
    if postgres and isinstance(column.type, String) and not isinstance(column.type, Enum):
        return column.in_(select(func.unnest(bindparam(name, type_=JoinedArray(column.type)))))
    if postgres:
        array = postgresql.ARRAY(column.type, dimensions=1)
        return column == any_(bindparam(name, type_=array))
    return column.in_(bindparam(name, expanding=True))


async def rows_in(
    conn: AsyncConnection,
    columns: tuple[Any, ...],
    key: ColumnElement[Any],
    values: Iterable[Any],
) -> list[Any]:
    """``SELECT columns WHERE key IN values`` (``columns`` a tuple of columns or of one
    table), built once for its columns and key and run with ``fetch_rows``: a consumer's
    read of a batch's rows."""
    stmt = _select_in(columns, key, conn.dialect.name == "postgresql")
    return await fetch_rows(conn, stmt, {"values": list(values)})


@lru_cache(maxsize=256)
def _select_in(columns: tuple[Any, ...], key: ColumnElement[Any], postgres: bool) -> Any:
    return select(*columns).where(in_list(key, "values", postgres=postgres))


def pair_of(
    conn: AsyncConnection,
    columns: tuple[ColumnElement[Any], ColumnElement[Any]],
    pairs: Iterable[tuple[Any, Any]],
) -> Any:
    """``(a, b) IN pairs``; on PostgreSQL the pairs travel as two arrays (``IN (SELECT …
    FROM unnest(…))``), one statement text for any number of pairs, as ``one_of``."""
    pairs = list(pairs)
    if conn.dialect.name != "postgresql":
        return tuple_(*columns).in_(pairs)
    arrays = (
        bindparam(None, [p[i] for p in pairs], type_=unnested_type(c.type))
        for i, c in enumerate(columns)
    )
    return _in_unnested(columns, arrays)


def pairs_in(
    columns: tuple[ColumnElement[Any], ColumnElement[Any]], names: tuple[str, str]
) -> ColumnElement[bool]:
    """``pair_of`` on PostgreSQL for a statement built once and run with ``fetch_rows``:
    the pairs given as two lists, the parameters ``names`` (the first values, the
    second)."""
    arrays = (
        bindparam(name, type_=unnested_type(c.type)) for name, c in zip(names, columns, strict=True)
    )
    return _in_unnested(columns, arrays)


def _in_unnested(
    columns: tuple[ColumnElement[Any], ColumnElement[Any]], arrays: Iterable[Any]
) -> ColumnElement[bool]:
    given = func.unnest(*arrays).table_valued("a", "b").render_derived(name="v")
    return tuple_(*columns).in_(select(*given.c))


def _distinct(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> bool:
    return len({tuple(r[k] for k in keys) for r in rows}) == len(rows)


# The PostgreSQL statements of ``insert_new``, ``update_many`` and ``upsert_many`` are built
# once per table and columns (one text each, whichever columns a batch holds alike):
# building one and computing its cache key costs more than running it.
@lru_cache(maxsize=256)
def _same_names(columns: tuple[str, ...]) -> dict[str, str]:
    return {c: c for c in columns}


@lru_cache(maxsize=256)
def _update_names(keys: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, str]:
    return {f"k_{k}": k for k in keys} | {f"v_{c}": c for c in columns}


@lru_cache(maxsize=256)
def _insert_from_arrays(
    table: Table,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
    *,
    ignore_duplicates: bool = True,
    absent_only: bool = False,
) -> Any:
    given = _rows_given(table, _same_names(columns))
    rows = select(*given.values())
    if absent_only:  # the rows whose primary key is not there
        rows = rows.where(~exists().where(*(c == given[c.key] for c in table.primary_key)))
    stmt = postgresql.insert(table).from_select(columns, rows)
    if ignore_duplicates:
        stmt = stmt.on_conflict_do_nothing()
    return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt


@lru_cache(maxsize=256)
def _upsert_from_arrays(
    table: Table, columns: tuple[str, ...], keys: tuple[str, ...], changes: tuple[str, ...]
) -> Any:
    given = _rows_given(table, _same_names(columns))
    stmt = postgresql.insert(table).from_select(columns, select(*given.values()))
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in changes}
    )


@lru_cache(maxsize=256)
def _update_from_arrays_once(
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    where: tuple[ColumnElement[bool], ...] = (),
    merged: tuple[tuple[str, ColumnElement[Any]], ...] = (),
) -> Any:
    given = _rows_given(table, _update_names(keys, columns))
    return (
        update(table)
        .where(
            *(table.c[k] == given[f"k_{k}"] for k in keys),
            *(_with_row_values(w, given) for w in where),
        )
        .values(
            {c: given[f"v_{c}"] for c in columns}
            | {c: _with_row_values(value, given) for c, value in merged}
        )
    )


async def _execute_built(conn: AsyncConnection, stmt: Any, params: dict[str, Any]) -> None:
    """Run ``stmt``, built once (its parameters named; a value of its own, as in
    ``kind == "dispatch"``, is taken as it is), on the driver's connection when a
    transaction is open there: its SQL is compiled once, and each execution only puts the
    parameters through the bind processors SQLAlchemy would use (a timestamp's zone check,
    JSON serialisation), without the statement cache, the execution context and the result
    SQLAlchemy builds around every execution."""
    raw = await in_transaction(conn)
    if raw is None:
        await conn.execute(stmt, params)
        return
    sql, arguments = _compiled(stmt, conn.dialect)
    await raw.execute(sql, *arguments(params))


async def fetch_rows(conn: AsyncConnection, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """``_execute_built`` for a statement that returns rows (``stmt`` built once, its
    parameters named: see ``in_list``): rows as SQLAlchemy's are read
    (by attribute, position or ``_mapping``), each value through its column type's result
    processor (a timestamp's zone), without SQLAlchemy's result around them. A statement
    that returns none (a write without ``RETURNING``): an empty list."""
    raw = await in_transaction(conn)
    if raw is None:
        result = await conn.execute(stmt, params)
        return list(result.all()) if result.returns_rows else []
    return await _fetch_on_driver(raw, conn.dialect, stmt, params)


async def _fetch_on_driver(
    raw: Any, dialect: Dialect, stmt: Any, params: dict[str, Any]
) -> list[Any]:
    sql, arguments = _compiled(stmt, dialect)
    row, results = _result_shape(stmt, dialect)
    records = await raw.fetch(sql, *arguments(params))
    if not results:
        return [row._make(r) for r in records]
    rows = []
    for record in records:
        values = list(record)
        for i, process in results:
            values[i] = process(values[i])
        rows.append(row._make(values))
    return rows


@lru_cache(maxsize=256)
def _compiled(stmt: Any, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], list[Any]]]:
    """``stmt``'s SQL in ``dialect``, and what makes its positional arguments of the named
    parameters given: each through its bind processor (``_array_processor`` for an array
    of rows' values), in order, with the values the statement holds itself where none is
    given."""
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup)
    processors = dict(compiled._bind_processors)
    binds = compiled.binds
    plan = tuple((n, _array_processor(binds[n].type, dialect, processors.get(n))) for n in names)
    own = {
        name: bind.effective_value
        for name, bind in binds.items()
        if not bind.required and name in names
    }

    def arguments(params: dict[str, Any]) -> list[Any]:
        values = {**own, **params} if own else params
        return [values[n] if p is None else p(values[n]) for n, p in plan]

    return compiled.string, arguments


def _array_processor(
    type_: Any, dialect: Dialect, processor: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """What a parameter of ``type_`` goes through: SQLAlchemy's ``processor``, except
    for a one-dimensional array on PostgreSQL whose elements the driver takes as they are
    (SQLAlchemy's copies the list through the element's processor, one call an element):
    a list of str or int as it is; one of UTC timestamps or of bools checked in one pass
    (the driver converts an aware timestamp to UTC itself), through the element's
    processor only when one is not what the driver takes as it is (a naive timestamp is
    refused, a 0 or 1 made a bool, as before)."""
    if dialect.name != "postgresql" or not isinstance(type_, postgresql.ARRAY):
        return processor
    if type_.dimensions != 1 or processor is None:
        return processor
    item = type_.item_type
    each = item.dialect_impl(dialect).bind_processor(dialect)
    if each is None:
        return _as_list
    if isinstance(item, UTCDateTime):
        return partial(_aware_timestamps, each)
    if isinstance(item, Boolean):
        return partial(_bools, each)
    return processor


def _as_list(values: Iterable[Any] | None) -> list[Any] | None:
    return None if values is None else _listed(values)


def _listed(values: Iterable[Any]) -> list[Any]:
    return values if type(values) is list else list(values)


# one pass over the values, no call an element: these run for every value of a batch
def _aware_timestamps(each: Callable[[Any], Any], values: Iterable[Any] | None) -> Any:
    if values is None:
        return None
    listed = _listed(values)
    for value in listed:
        if value is not None and (type(value) is not datetime or value.tzinfo is None):
            return [each(v) for v in listed]
    return listed


def _bools(each: Callable[[Any], Any], values: Iterable[Any] | None) -> Any:
    if values is None:
        return None
    listed = _listed(values)
    for value in listed:
        if value is not None and type(value) is not bool:
            return [each(v) for v in listed]
    return listed


@lru_cache(maxsize=256)
def _result_shape(
    stmt: Any, dialect: Dialect
) -> tuple[Any, tuple[tuple[int, Callable[[Any], Any]], ...]]:
    """The row type of ``stmt``'s results (its columns' names) and the positions and result
    processors of the columns that have one."""
    columns = stmt.compile(dialect=dialect)._result_columns
    names = tuple(c[0] for c in columns)
    base = namedtuple("Row", names)  # type: ignore[misc]
    row = type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})
    results = tuple(
        (i, process)
        for i, c in enumerate(columns)
        if (process := c[3]._cached_result_processor(dialect, None)) is not None
    )
    return row, results


def unnested(
    types: Mapping[str, Any], alias: str = "v", arrays: Mapping[str, Any] | None = None
) -> Any:
    """Rows given as one array parameter per column (PostgreSQL): ``unnest`` of the
    parameters ``types`` (parameter → its SQL type) as the table ``alias``, whose columns
    are named as the parameters (one statement text for any number of rows). ``arrays``:
    the type a parameter travels as, when not ``unnested_type`` of its own."""
    arrays = arrays or {}
    given = (
        bindparam(name, type_=arrays.get(name) or unnested_type(type_))
        for name, type_ in types.items()
    )
    return func.unnest(*given).table_valued(*types).render_derived(name=alias)


def unnested_type(type_: Any) -> Any:
    """The type of a parameter given as a list of values of ``type_`` for ``unnest``
    (PostgreSQL): for text, ``JoinedArray``; otherwise the array.

    Only for ``unnest``, which reads its argument once a statement. Compared with ``=
    ANY(…)`` in a generic plan's filter, a ``JoinedArray`` would be split again for every
    row (an array parameter is only read again): 300 rows against 100 values 0.9 -> 1.9
    ms of PostgreSQL; a custom plan folds either into the one array."""
    if isinstance(type_, String) and not isinstance(type_, Enum):
        return JoinedArray(type_)
    return postgresql.ARRAY(type_, dimensions=1)


class MicrosArray(TypeDecorator[Sequence[datetime | None]]):
    """A list of aware timestamps sent as the whole microseconds since the Unix epoch
    (``bigint[]``), for ``given_rows``, which makes each row's timestamp of its number
    again (``_instant``: exact, as integers, for any timestamp Python holds).

    The driver encodes a timestamp array element by element (its checks against
    collections.abc's classes, the value turned to UTC and taken from its epoch, in
    Python's objects). An insert of 128 rows of five timestamps: 0.85 -> 0.50 us of the
    client's CPU an element, 0.22 -> 0.29 us of PostgreSQL's time (the numbers as one
    text: 0.44 and 0.34; made an array of timestamps again before ``unnest``: 0.38 and
    0.48)."""

    impl = postgresql.ARRAY(BigInteger, dimensions=1)
    cache_ok = True

    def process_bind_param(
        self, value: Sequence[datetime | None] | None, dialect: Dialect
    ) -> list[int | None] | None:
        if value is None:
            return None
        try:
            return [None if at is None else (at - _EPOCH) // _MICROSECOND for at in value]
        except TypeError:  # not an aware timestamp: refused as UTCDateTime refuses it
            for at in value:
                UTCDateTime().process_bind_param(at, dialect)
            raise


def _instant(micros: Any) -> Any:
    """The timestamp ``micros`` whole microseconds after the Unix epoch: ``to_timestamp``
    of the whole seconds (exact as a double for any year up to 9999) plus the rest."""
    seconds = func.to_timestamp(micros.op("/")(literal_column("1000000")))
    rest = micros.op("%")(literal_column("1000000")) * literal_column("interval '1 microsecond'")
    return type_coerce(seconds + rest, UTCDateTime())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class JoinedArray(TypeDecorator[Sequence[str | None]]):
    """A list of text values sent as one text and read as an array of ``item`` (a text
    type): the values joined by U+001F (the unit separator) and split again in SQL, or,
    when they cannot be (one holds the separator, a NULL among them, a lone empty text,
    which would split into none, a first value beginning with "{"), spelled as an array
    literal ("{...}", each value quoted), which a text beginning with "{" is read as.

    The driver checks and encodes an array element by element (~0.29 us an element: two
    isinstance checks against collections.abc's classes, in Python), a text in one piece
    (~0.01 us an element joined); PostgreSQL splits a text as fast as it reads an array
    (its literal, the rare case, takes it ~2x as long). Ids, keys and codes are most of
    a consumer's batch's values."""

    impl = Text
    cache_ok = True

    def __init__(self, item: Any) -> None:
        super().__init__()
        self.item = item

    def bind_expression(self, bindvalue: Any) -> Any:
        texts = case(
            (func.starts_with(bindvalue, literal_column("'{'")), bindvalue.cast(_TEXTS)),
            else_=func.string_to_array(bindvalue, literal_column("chr(31)"), type_=_TEXTS),
        )
        return texts.cast(postgresql.ARRAY(self.item, dimensions=1))

    def process_bind_param(
        self, value: Sequence[str | None] | None, dialect: Dialect
    ) -> str | None:
        return None if value is None else joined_texts(value)


def joined_texts(values: Iterable[str | None]) -> str:
    """``values`` as the one text ``JoinedArray`` sends (``split_texts_sql`` reads it in
    a statement's own SQL)."""
    listed = _listed(values)
    try:
        joined = _SEPARATOR.join(listed)
    except TypeError:  # a NULL among them (a value not text: refused below)
        pass
    else:
        if joined[:1] not in ("", "{") and joined.count(_SEPARATOR) == len(listed) - 1:
            return joined
    return "{" + ",".join(_array_element(v) for v in listed) + "}"


def split_texts_sql(param: str) -> str:
    """The ``text[]`` of a ``joined_texts`` text, in a statement written as SQL: ``param``
    the text's expression there (``$3::text``). Read once, in ``unnest`` (as
    ``unnested_type`` says)."""
    split = JoinedArray(Text()).bind_expression(literal_column(param))
    return str(split.compile(dialect=_POSTGRESQL, compile_kwargs={"literal_binds": True}))


def joined_payloads(payloads: Sequence[bytes]) -> bytes:
    """Events' JSON payloads (their UTF-8 bytes) as the one byte string ``split_payloads_sql``
    reads as their texts: joined by the byte 0x1F (U+001F), which JSON never holds raw (a
    control character in a string is escaped, ``\\u001f``), or, when they cannot be (one
    holds the byte anyway, a lone empty payload, which would split into none, a first one
    empty, which would begin with the byte), 0x1F and then the texts' array literal.

    The driver checks and encodes a ``bytea[]`` element by element (two isinstance checks
    against collections.abc's classes, in Python), a byte string at once."""
    joined = _SEPARATOR_BYTE.join(payloads)
    if (
        joined[:1] not in (b"", _SEPARATOR_BYTE)
        and joined.count(_SEPARATOR_BYTE) == len(payloads) - 1
    ):
        return joined
    quoted = (b'"' + p.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"' for p in payloads)
    return _SEPARATOR_BYTE + b"{" + b",".join(quoted) + b"}"


def split_payloads_sql(param: str) -> str:
    """The ``text[]`` of a ``joined_payloads`` byte string, in a statement written as SQL:
    ``param`` the string's expression there (``$3::bytea``), read once (``unnest``)."""
    return (
        f"CASE WHEN substr({param}, 1, 1) = '\\x1f'::bytea"
        f" THEN CAST(convert_from(substr({param}, 2), 'UTF8') AS text[])"
        f" ELSE string_to_array(convert_from({param}, 'UTF8'), chr(31)) END"
    )


_POSTGRESQL = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]


_SEPARATOR = "\x1f"
_SEPARATOR_BYTE = b"\x1f"
_TEXTS = postgresql.ARRAY(Text, dimensions=1)


def _array_element(value: str | None) -> str:
    """``value`` as an element of an array literal: quoted, its quotes and backslashes
    escaped (a value not text raises TypeError, as the driver refuses it)."""
    if value is None:
        return "NULL"
    return '"' + str.replace(str.replace(value, "\\", "\\\\"), '"', '\\"') + '"'


def given_rows(types: Mapping[str, Any], alias: str = "v") -> dict[str, Any]:
    """A batch's rows as a PostgreSQL statement built once reads them (``given_values``
    gives its parameters): for each parameter of ``types`` (parameter → its SQL type, a
    column's) the expression of a row's value there.

    The rows travel as one array parameter per column, ``unnest`` of them as the table
    ``alias``; but a column the batch's rows all hold alike travels as one value (the
    parameter ``<name>_alike``) and an empty array: the driver checks and encodes every
    element of an array, ~0.8 us an element, and a batch's rows share many values (an
    event's kind, a policy's deadline, a unit...). ``unnest`` pads an empty array with
    NULLs, which ``coalesce`` replaces with the one value (NULL itself when the column
    varies). So the statement's text does not depend on which columns are alike: one text
    per statement built, prepared once per connection, however the batches vary (a text
    per pattern of alike columns would be up to 2**columns of them, evicting each other
    from the driver's cache of prepared statements). The first parameter is always an
    array (``given_values``): it carries the number of rows (put a key first)."""
    # timestamps travel as their microseconds (``MicrosArray``), made timestamps here
    times = {name for name, type_ in types.items() if isinstance(type_, UTCDateTime)}
    given = unnested(types, alias, dict.fromkeys(times, MicrosArray()))
    first = next(iter(types))
    values = {name: _instant(given.c[name]) if name in times else given.c[name] for name in types}
    return {
        name: values[name]
        if name == first
        else func.coalesce(values[name], bindparam(f"{name}_alike", type_=type_))
        for name, type_ in types.items()
    }


def given_values(columns: Mapping[str, list[Any]]) -> dict[str, Any]:
    """The parameters of ``given_rows`` for a batch's rows given as each parameter's
    values (one a row, in the rows' order): those values as an array, or, when every row
    holds the same value there (``==``: a value equal to another stands for it), an empty
    array and that one value. The first parameter always as an array."""
    params: dict[str, Any] = {}
    first = True
    for name, values in columns.items():
        if first:
            params[name], first = values, False
        # the last value first: a varied column seldom ends with its first value
        elif values[-1] == values[0] and values.count(values[0]) == len(values):
            params[name], params[f"{name}_alike"] = [], values[0]
        else:
            params[name], params[f"{name}_alike"] = values, None
    return params


def _rows_given(table: Table, named: Mapping[str, str]) -> dict[str, Any]:
    """``given_rows`` of parameters ``named`` (parameter → the column of ``table`` whose
    type it has)."""
    return given_rows({name: table.c[column].type for name, column in named.items()})


def _row_values(named: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``given_values`` of ``rows`` (column → value), by the parameters ``named``."""
    return given_values({name: [r[column] for r in rows] for name, column in named.items()})


def _with_row_values(expression: E, given: Mapping[str, Any]) -> E:
    """``expression`` with each ``bindparam("v_<column>")`` read from the row ``given``
    (``given_rows``)."""

    def row_value(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
        if isinstance(element, BindParameter) and element.key in given:
            return cast(ExternallyTraversible, given[element.key])
        return None

    return replacement_traverse(expression, {}, row_value)


def service_url(db_url: str, service: str) -> str:
    """SQLite: one file per service beside the configured one; PostgreSQL: unchanged."""
    if not db_url.startswith("sqlite"):
        return db_url
    prefix, _, path = db_url.partition(":///")
    if not path or path.startswith(":memory:"):
        return db_url
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix or ".db"
    return f"{prefix}:///{p.with_name(f'{p.stem}-{service}{suffix}')}"


def _outage_is_disconnect(context: Any) -> None:
    """A connection broken mid-statement (``InternalClientError: cannot switch to state
    12`` after a PostgreSQL restart) counts as a disconnect, so the pool discards it and its
    siblings instead of handing them out again."""
    if not context.is_disconnect and is_database_outage(context.original_exception):
        context.is_disconnect = True


class UnitOfWork:
    """One transaction: state changes through ``conn``, events through ``emit``.

    ``new_facts``: what the transaction writes is taken for new facts, as a consumer's
    batch of events claimed as new nearly always is (``Database.claim_unparked``'s
    ``all_new``): ``insert_new`` may insert without ignoring duplicates, and a row already
    there fails the transaction for the caller to run again without it."""

    def __init__(self, conn: AsyncConnection, *, new_facts: bool = False) -> None:
        self.conn = conn
        self.new_facts = new_facts
        self.events: list[Envelope | Outgoing] = []
        self.after_commit: list[Callable[[], None]] = []
        # reads that stay true for the whole transaction, made once (a consumer's batch
        # shares one unit of work on its fast path)
        self.memo: dict[str, Any] = {}

    def emit(self, *envelopes: Envelope | Outgoing) -> None:
        self.events.extend(envelopes)


# PostgreSQL's planner cost of a page read out of order (``random_page_cost``) on the
# services' connections: 1.1, the usual value for SSDs and for data that stays in memory,
# against the server's default 4 (spinning disks). At 4 the consumers' set-based statements
# (a batch of ~100 rows joined to a table by its key: UPDATE ... FROM unnest(...)) got
# generic plans scanning the whole table, fixed by each connection at a statement's sixth
# execution on a table of a few hundred rows and kept until autovacuum's first ANALYZE:
# SLA's dispatched statement read all of sla.tickets for each batch (4.5 ms a call at
# 10,000 tickets against 2.9; ~120 us a row at 100,000 tickets against ~13 through the key).
# At 1.1 those plans go through the key from a near-empty table on, and a plan made with
# statistics does too. ``Settings.db_random_page_cost`` (None: the server's own).
RANDOM_PAGE_COST = 1.1


class Database:
    def __init__(
        self,
        service: str,
        url: str,
        *,
        pool_size: int = 10,
        random_page_cost: float | None = RANDOM_PAGE_COST,
    ) -> None:
        self.service = service
        self.url = service_url(url, service)
        self.random_page_cost = random_page_cost
        self.metadata = MetaData()
        self.outbox = outbox_table(self.metadata)
        self.inbox = inbox_table(self.metadata)
        self.dead_letters = dead_letter_table(self.metadata)
        self.event_history = event_history_table(self.metadata)
        self.events_written = asyncio.Event()
        self.engine = self._make_engine(pool_size)
        # connections kept checked out between uses (``driver_connection``): a quarter of
        # the pool at most, so that the others always have the rest
        self._keeps = self.engine.dialect.driver == "asyncpg"
        self._kept: list[AsyncConnection] = []
        self._kept_at_most = min(4, pool_size // 2)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _make_engine(self, pool_size: int) -> AsyncEngine:
        if self.url.startswith("postgresql"):
            engine = create_async_engine(
                self.url,
                # as many connections as before (pool_size kept plus as many in overflow),
                # all kept once opened: an overflow connection was closed when given back,
                # and the next burst opened it again (a fork and a SCRAM login for
                # PostgreSQL, asyncpg's type introspection, every statement prepared anew)
                pool_size=2 * pool_size,
                max_overflow=0,
                # the most recently used first: a quiet moment's work stays on the
                # connections that have its statements prepared
                pool_use_lifo=True,
                # no ping before each checkout (a round trip per transaction): a connection
                # that died with the server fails its statement, is discarded by the pool,
                # and the request answers 503 (shared/errors.py) for the client to retry
                pool_pre_ping=False,
                connect_args={"server_settings": self._server_settings()},
            )
            event.listen(engine.sync_engine, "handle_error", _outage_is_disconnect)
            return engine
        kwargs: dict[str, Any] = {}
        if ":memory:" in self.url or self.url.rstrip("/").endswith("sqlite+aiosqlite:"):
            kwargs["poolclass"] = StaticPool
        engine = create_async_engine(self.url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        return engine

    def _server_settings(self) -> dict[str, str]:
        """The settings each PostgreSQL connection starts with: the service's schema and
        the planner's page cost (``RANDOM_PAGE_COST``)."""
        settings = {"search_path": self.service}
        if self.random_page_cost:  # None or 0: the server's own
            settings["random_page_cost"] = str(self.random_page_cost)
        return settings

    async def migrate(self, script_location: Path) -> None:
        """Bring the service's schema to head. Safe when two instances start together."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                lock = zlib.crc32(f"migrate:{self.service}".encode())
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.service}"'))
            await conn.run_sync(migration_step, str(script_location))
            await conn.run_sync(self.metadata.create_all, [self.dead_letters, self.event_history])

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        async with self.engine.begin() as conn:
            uow = UnitOfWork(conn)
            yield uow
            await self.write_outbox(conn, uow.events)
        if uow.events:
            self.events_written.set()
        for callback in uow.after_commit:
            callback()

    @asynccontextmanager
    async def kept_transaction(self) -> AsyncIterator[AsyncConnection]:
        """``engine.begin()`` with ``begin_on_driver``, for the hot loops (a consumer's
        batches), without SQLAlchemy's bookkeeping around a transaction on PostgreSQL
        (asyncpg): the connection is one of those kept checked out (``driver_connection``)
        and the transaction is begun and committed on the driver, so none of the four trips
        through a greenlet ``engine.begin()`` takes (connect, begin, commit, close) and no
        pool checkout and return. A statement sent through SQLAlchemy joins the transaction
        as usual (SQLAlchemy then commits it: one greenlet). A failure rolls back. Elsewhere
        than on asyncpg, ``engine.begin()``."""
        if not self._keeps:
            async with self.engine.begin() as conn:
                await begin_on_driver(conn)
                yield conn
            return
        async with self.driver_connection() as (conn, _):
            adapted: Any = (await _pooled(conn)).dbapi_connection
            await adapted._start_transaction()
            yield conn
            if conn.sync_connection is not None and conn.sync_connection.in_transaction():
                await conn.commit()
            elif adapted._transaction is not None:
                transaction, adapted._transaction = adapted._transaction, None
                await transaction.commit()

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[tuple[AsyncConnection, Any]]:
        """A pooled connection and its driver's own (asyncpg) connection, for the hot
        paths' statements written once in SQL: asyncpg prepares each once per connection,
        so no statement is built or compiled per request. A statement on the driver's
        connection runs in a transaction of its own unless the SQLAlchemy connection has
        begun one (``conn.begin()`` then a statement through ``conn``). A connection that
        an outage broke is discarded, not handed out again.

        On asyncpg a few connections (``_kept_at_most``) stay checked out between uses:
        taking one back costs no pool checkout and return and no trip through a greenlet
        (three for ``engine.connect()``, its close and its raw connection). A transaction
        left open through ``conn`` is rolled back (as its close would); one whose server
        closed it while it was kept is discarded when next taken."""
        conn = await self._take()
        try:
            yield conn, (await _pooled(conn)).driver_connection
        except BaseException as exc:
            if is_database_outage(exc) and not conn.invalidated:
                await conn.invalidate()
            await conn.close()  # rolls back what is still open (the pool's reset)
            raise
        if conn.sync_connection is not None and conn.sync_connection.in_transaction():
            await conn.rollback()
        if self._keeps and len(self._kept) < self._kept_at_most and not conn.invalidated:
            self._kept.append(conn)
        else:
            await conn.close()

    async def _take(self) -> AsyncConnection:
        while self._kept:
            conn = self._kept.pop()
            if not (await _pooled(conn)).driver_connection.is_closed():
                return conn
            await conn.invalidate()
            await conn.close()
        return await self.engine.connect()

    async def scalar(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        """The first value ``stmt`` reads (None without a row), in a transaction of its
        own: a due-time loop's look. ``stmt`` built once (its parameters named, as for
        ``fetch_rows``): on PostgreSQL it runs on a kept connection's driver (compiled once,
        no greenlet, no pool checkout), its value through the column's result processor."""
        if not self._keeps:
            async with self.engine.connect() as conn:
                return await conn.scalar(stmt, params or {})
        async with self.driver_connection() as (conn, raw):
            rows = await _fetch_on_driver(raw, conn.dialect, stmt, params or {})
        return rows[0][0] if rows else None

    async def write_outbox(
        self, conn: AsyncConnection, events: Sequence[Envelope | Outgoing]
    ) -> None:
        """The events in the outbox, in one statement (the caller's transaction)."""
        if not events:
            return
        if self.is_postgres:
            # one statement for any number of events (the SLA scanner writes thousands),
            # one array per column, on the driver in a transaction begun there (a
            # consumer's batch of one event as well); the rows of one write share their
            # ``created_at``. The payloads go as the envelopes' UTF-8 bytes, joined
            # (``joined_payloads``), which PostgreSQL reads as texts: not decoded to str
            # here for the driver to encode again (~3 us a KiB of Chinese). A column the
            # events all hold alike (a batch's topic) as one value (``given_values``)
            given: dict[str, list[Any]] = {
                "event_id": [e.id_text for e in events],
                "topic": [e.topic for e in events],
                "key": [e.key for e in events],
            }
            params = given_values(given) | {
                "payload": joined_payloads([e.to_json() for e in events]),
                "now": datetime.now(UTC),
            }
            await _execute_built(conn, _INSERT_OUTBOX_PG, params)
        else:
            await conn.execute(insert(self.outbox), [outbox_row(e) for e in events])

    async def claim(
        self,
        conn: AsyncConnection,
        consumer: str,
        event_ids: Sequence[str],
        *,
        all_new: bool = False,
    ) -> set[str]:
        """One multi-row inbox insert: the ids among ``event_ids`` this consumer has not
        seen before (the others are redeliveries). ``all_new``: see ``claim_unparked``."""
        if not event_ids:
            return set()
        if self.is_postgres:
            result = await conn.execute(_CLAIM_PG, {"consumer": consumer, "ids": list(event_ids)})
            return set(result.scalars().all())
        stmt = sqlite.insert(self.inbox).values(
            [{"consumer": consumer, "event_id": i} for i in event_ids]
        )
        if not all_new:
            stmt = stmt.on_conflict_do_nothing()
        try:
            result = await conn.execute(stmt.returning(self.inbox.c.event_id))
        except IntegrityError as exc:  # the inbox's one constraint is its primary key
            raise SeenBefore from exc
        return set(result.scalars().all())

    async def claim_unparked(
        self,
        conn: AsyncConnection,
        consumer: str,
        event_ids: Sequence[str],
        keys: Sequence[str],
        *,
        all_new: bool = False,
    ) -> tuple[set[str], dict[str, int]]:
        """``claim``, and the consumer's parked events that head a queue for one of ``keys``
        (key → the id of the first): on PostgreSQL in one round trip.

        ``all_new``: the ids are taken for new ones, as nearly all are, and inserted as
        such, without ``ON CONFLICT DO NOTHING`` (its probe of the key before each insert
        and the speculative insert's second record cost PostgreSQL ~2 us a row, about as
        much as the insert); one this consumer has seen raises ``SeenBefore`` (the primary
        key refuses it) and spoils the transaction, for the caller to roll back and claim
        again without ``all_new``."""
        if not self.is_postgres:
            claimed = await self.claim(conn, consumer, event_ids, all_new=all_new)
            return claimed, await self.parked_heads(conn, consumer, keys)
        try:
            rows = await fetch_rows(
                conn,
                _CLAIM_NEW_AND_HEADS_PG if all_new else _CLAIM_AND_HEADS_PG,
                {
                    "consumer": consumer,
                    "ids": list(event_ids),
                    "keys": list(keys),
                },
            )
        except Exception as exc:
            if not refused_by_a_key(exc):
                raise
            raise SeenBefore from exc
        # all new: the insert took every id (or failed), and the rows are the heads alone
        new: set[str] = set(event_ids) if all_new else set()
        heads: list[tuple[int, str]] = []
        for event_id, key, dead_id in rows:
            if event_id is not None:
                new.add(event_id)
            else:
                heads.append((dead_id, key))
        return new, {key: dead_id for dead_id, key in sorted(heads)}

    async def parked_heads(
        self, conn: AsyncConnection, consumer: str, keys: Sequence[str]
    ) -> dict[str, int]:
        dead = self.dead_letters
        rows = await conn.execute(
            select(dead.c.key, dead.c.id)
            .where(
                dead.c.consumer == consumer,
                dead.c.state == "parked",
                dead.c.behind.is_(None),
                dead.c.key.in_(set(keys)),
            )
            .order_by(dead.c.id)
        )
        return {key: dead_id for key, dead_id in rows}

    async def prune_inbox(self, made_before: datetime, batch_size: int = 5000) -> int:
        """Forget the handled events made before ``made_before``, oldest first; returns how
        many went (at most ``batch_size``: call again until none go).

        The retention counts from when an event was made, which its id tells: a UUID v7
        starts with that time (``event_uuid``), so the ids made before the cutoff are the
        ones below ``first_event_uuid(made_before)`` and each consumer's are a range of the
        primary key (consumer, event_id), read from its start. Asking each consumer in turn
        (the next name is one look into the key) keeps it a range: a condition on the
        event id alone would read the whole key. The ids compare as text, lower-case hex
        with the hyphens in the same places, which any collation orders as the bytes. An
        id that is not a v7 says nothing of its time and goes or stays by its random bits
        (``shared.migrations.drop_inbox_processed_at``)."""
        inbox = self.inbox
        cutoff = str(first_event_uuid(made_before))
        async with self.engine.begin() as conn:
            consumer = await conn.scalar(select(func.min(inbox.c.consumer)))
            while consumer is not None:
                mine = inbox.c.consumer == consumer
                # the batch ends before the first id past it, looked up first: PostgreSQL
                # plans a range of the key for a bound it is given, and reads the whole
                # table for one it must look up itself or for "IN (the batch's ids)"
                past_the_batch = await conn.scalar(
                    select(inbox.c.event_id)
                    .where(mine, inbox.c.event_id < cutoff)
                    .order_by(inbox.c.event_id)
                    .offset(batch_size)
                    .limit(1)
                )
                gone = await conn.execute(
                    delete(inbox).where(mine, inbox.c.event_id < (past_the_batch or cutoff))
                )
                if gone.rowcount:
                    return int(gone.rowcount)
                consumer = await conn.scalar(
                    select(func.min(inbox.c.consumer)).where(inbox.c.consumer > consumer)
                )
        return 0

    async def handle_once(
        self,
        consumer: str,
        envelope: Envelope,
        effect: Callable[[UnitOfWork], Awaitable[None]],
    ) -> bool:
        """Run ``effect`` unless this consumer already has; the inbox row and the effect
        commit together, so a redelivered event changes nothing. Returns False for a
        duplicate."""
        async with self.unit_of_work() as uow:
            stmt = insert_ignoring_duplicates(uow.conn, self.inbox).values(
                consumer=consumer,
                event_id=str(envelope.event_id),
            )
            result = await uow.conn.execute(stmt)
            if result.rowcount == 0:
                return False
            await effect(uow)
        return True

    async def dispose(self) -> None:
        kept, self._kept = self._kept, []
        for conn in kept:
            await conn.close()
        await self.engine.dispose()


def _text_lists(*names: str) -> list[BindParameter[Any]]:
    """The parameters ``names``, each a list of text (events' ids, keys, topics) for
    ``unnest``, as ``JoinedArray``s."""
    return [bindparam(name, type_=JoinedArray(String())) for name in names]


_CLAIM_PG = text(
    "INSERT INTO inbox (consumer, event_id) "
    "SELECT :consumer, unnest(:ids) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
).bindparams(*_text_lists("ids"))


class SeenBefore(Exception):
    """A claim of events taken for new (``all_new``) met one the consumer has seen: the
    statement failed, and with it the transaction."""


def refused_by_a_key(exc: BaseException) -> bool:
    """A unique violation (of the inbox's primary key, or of a key ``insert_new`` with
    ``all_new`` met): asyncpg's own error (on the driver's connection) or SQLAlchemy's
    IntegrityError around it (the key is the inbox's one constraint; a set-based batch
    that took another integrity error for one is only run once more before it falls back)."""
    return isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


def _claim_and_heads_pg(all_new: bool) -> Any:
    """The claim and the parked heads of the batch's keys in one statement (a consumer's
    batch). Ids taken for new (``all_new``) are inserted as they are and not returned: the
    insert takes every one or fails, so the claimed are the ids given (no row a claimed
    event for PostgreSQL to return and the driver to read: ~0.5 us of the client's CPU an
    event); otherwise duplicates are ignored and the ids claimed returned."""
    claim = "INSERT INTO inbox (consumer, event_id) SELECT :consumer, unnest(:ids)"
    if all_new:
        claimed = f"WITH claimed AS ({claim}) SELECT CAST(NULL AS varchar) AS event_id, key, id"
    else:
        claimed = (
            f"WITH claimed AS ({claim} ON CONFLICT DO NOTHING RETURNING event_id) "
            "SELECT event_id, CAST(NULL AS varchar) AS key, CAST(NULL AS integer) AS id "
            "FROM claimed "
            "UNION ALL "
            "SELECT NULL, key, id"
        )
    return (
        text(
            claimed + " FROM dead_letters"
            " WHERE consumer = :consumer AND state = 'parked' AND behind IS NULL"
            # the keys split once (an InitPlan, run only when a parked head is found), not
            # for every row the filter reads (``unnested_type``)
            " AND key = ANY(ARRAY(SELECT unnest(:keys)))"
        )
        .bindparams(*_text_lists("ids", "keys"))
        .columns(column("event_id", String), column("key", String), column("id", Integer))
    )


_CLAIM_AND_HEADS_PG = _claim_and_heads_pg(all_new=False)
_CLAIM_NEW_AND_HEADS_PG = _claim_and_heads_pg(all_new=True)
# the events as ``given_rows`` reads them: a column alike in all as one value
_INSERT_OUTBOX_PG = text(
    "INSERT INTO outbox (event_id, topic, key, payload, created_at, attempts) "
    "SELECT v.event_id, coalesce(v.topic, CAST(:topic_alike AS varchar)),"
    " coalesce(v.key, CAST(:key_alike AS varchar)), v.payload, "
    "CAST(:now AS timestamptz), 0 FROM unnest(:event_id, :topic, :key, "
    f"{split_payloads_sql('CAST(:payload AS bytea)')}) AS v(event_id, topic, key, payload)"
).bindparams(*_text_lists("event_id", "topic", "key"))


async def begin_on_driver(conn: AsyncConnection) -> None:
    """Begin ``conn``'s transaction (``engine.begin()``) on the driver now: SQLAlchemy's
    asyncpg adapter begins it only at the first statement sent through SQLAlchemy, so until
    then a statement built once (``insert_new``, ``update_many``, the consumer's claim)
    would go through SQLAlchemy too. The adapter still owns the transaction: it commits
    or rolls it back as if it had begun it itself. Nothing elsewhere than on PostgreSQL,
    or with another adapter (its statements then go through SQLAlchemy, as always)."""
    if conn.dialect.name != "postgresql":
        return
    adapted: Any = (await _pooled(conn)).dbapi_connection
    start = getattr(adapted, "_start_transaction", None)
    if start is not None and getattr(adapted, "_transaction", False) is None:
        await start()


async def in_transaction(conn: AsyncConnection) -> Any | None:
    """The driver's (asyncpg) connection under ``conn`` when a transaction is open on it,
    else None: a statement sent there is part of that transaction, while on a connection
    whose transaction SQLAlchemy has not begun yet (it begins one at the first statement
    through ``conn``) it would run and commit on its own."""
    if conn.dialect.name != "postgresql":
        return None
    raw: Any = (await _pooled(conn)).driver_connection
    return raw if raw.is_in_transaction() else None


async def _pooled(conn: AsyncConnection) -> Any:
    """``conn.get_raw_connection()`` without its trip through a greenlet when ``conn``
    holds its pooled connection (checked out, neither closed nor invalidated): then
    reading it does no I/O. Otherwise SQLAlchemy's own way (it reconnects or refuses)."""
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        return sync.connection
    return await conn.get_raw_connection()


def outbox_row(envelope: Envelope | Outgoing) -> dict[str, Any]:
    """The outbox row of an event (a writer of its own SQL writes these columns)."""
    return {
        "event_id": envelope.id_text,
        "topic": envelope.topic,
        "key": envelope.key,
        "payload": envelope.to_json().decode(),
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }


def migration_step(
    sync_conn: Connection, script_location: str, step: str = "upgrade", revision: str = "head"
) -> None:
    """Alembic's ``step`` (``upgrade`` or ``downgrade``) to ``revision`` of the migrations at
    ``script_location``, on ``sync_conn`` (``AsyncConnection.run_sync`` passes it)."""
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["connection"] = sync_conn
    getattr(command, step)(cfg, revision)
