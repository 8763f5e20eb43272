"""The arguments shared/db.py hands the driver for a batch's rows sent as arrays (one per
column, PostgreSQL; one value for a column the rows all hold alike): the values
SQLAlchemy's own bind processors make, without running them element by element. And the
same rows written through the same functions on SQLite (tests/integration/
test_set_based_statements.py writes them on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.db import (
    JoinedArray,
    UTCDateTime,
    _compiled,
    _insert_from_arrays,
    fetch_rows,
    given_values,
    insert_new,
    joined_payloads,
    update_many,
    upsert_many,
)
from shared.events import Envelope

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MICROS_T0 = 1_796_374_800_000_000  # T0 in microseconds since the Unix epoch
BEIJING = timezone(timedelta(hours=8))

metadata = MetaData()
flags = Table(
    "flags",
    metadata,
    Column("name", String(12), primary_key=True),
    Column("raised", Boolean),
    Column("count", Integer),
    Column("at", UTCDateTime),
    Column("notes", JSON),
)
COLUMNS = ("name", "raised", "count", "at", "notes")
ROWS: list[dict[str, Any]] = [
    {"name": "a", "raised": True, "count": 1, "at": T0.astimezone(BEIJING), "notes": {"k": 1}},
    {"name": "b", "raised": 0, "count": None, "at": None, "notes": ["x"]},
    {"name": "c", "raised": None, "count": 3, "at": T0 + timedelta(hours=1), "notes": None},
]
STORED = [
    ("a", True, 1, T0, {"k": 1}),
    ("b", False, None, None, ["x"]),
    ("c", None, 3, T0 + timedelta(hours=1), None),
]
DIALECT = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]

# batches whose rows hold a column alike (every column but the name), as values the
# driver would not take as they are (0 for a bool, a timestamp not in UTC, JSON)
ALIKE = [
    {"name": n, "raised": 0, "count": 7, "at": T0.astimezone(BEIJING), "notes": {"k": 1}}
    for n in "def"
]
ALIKE_NONE = [{"name": n, "raised": None, "count": None, "at": None, "notes": None} for n in "gh"]
ONE = [{"name": "i", "raised": 1, "count": 0, "at": T0, "notes": []}]
# the first and last rows alike, the middle one not
VARIED_INSIDE = [
    {"name": "k", "raised": True, "count": 4, "at": T0, "notes": {"k": 1}},
    {"name": "l", "raised": False, "count": None, "at": None, "notes": []},
    {"name": "m", "raised": True, "count": 4, "at": T0, "notes": {"k": 1}},
]
# built once, as update_many wants: the rows' count added where the stored one is above it
ADDED = {"count": flags.c.count + bindparam("v_count")}
ABOVE = flags.c.count > bindparam("v_count")
WRITTEN = [
    ("a", True, 7, T0, {"k": 1}),
    ("b", False, None, None, ["x"]),
    ("c", None, 3, T0 + timedelta(hours=1), None),
    ("d", False, 11, T0, {"k": 1}),
    ("e", False, 9, T0 + timedelta(hours=1), {"k": 1}),
    ("f", False, 9, T0 + timedelta(hours=2), {"k": 1}),
    ("g", False, None, None, {"z": 2}),
    ("h", False, None, None, {"z": 2}),
    ("i", True, 0, T0, []),
    ("j", True, 7, None, None),
    ("k", True, 4, T0, {"k": 1}),
    ("l", False, None, None, []),
    ("m", True, 4, T0, {"k": 1}),
]


async def write_alike_and_varied(conn: AsyncConnection) -> list[tuple[Any, ...]]:
    """Batches written by ``insert_new``, ``update_many`` and ``upsert_many`` with columns
    alike and varied across their rows (the rows ``WRITTEN``), and what is then stored."""
    for batch in (ROWS, ALIKE, ALIKE_NONE, ONE, VARIED_INSIDE):
        await insert_new(conn, flags, batch)
    changed = [{"name": n, "count": 9, "at": T0 + timedelta(hours=i)} for i, n in enumerate("def")]
    await update_many(conn, flags, ["name"], changed)
    await update_many(conn, flags, ["name"], [{"name": n, "notes": {"z": 2}} for n in "gh"])
    await update_many(conn, flags, ["name"], [{"name": n, "raised": False} for n in "gh"])
    upserted = [{"name": n, "raised": True, "count": 5, "at": None, "notes": None} for n in "aj"]
    await upsert_many(conn, flags, ["name"], upserted, ["count"])
    added = [{"name": n, "count": 2} for n in "abdij"]
    await update_many(conn, flags, ["name"], added, ABOVE, merge=ADDED)
    return [tuple(r) for r in await conn.execute(select(flags).order_by(flags.c.name))]


def arguments(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> list[Any]:
    """What ``insert_new`` hands the driver for ``rows`` on PostgreSQL."""
    _, build = _compiled(_insert_from_arrays(flags, columns, ()), DIALECT)
    return build(given_values({c: [r[c] for r in rows] for c in columns}))


def sqlalchemys(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> list[Any]:
    """The same, each array through SQLAlchemy's own bind processor."""
    compiled = _insert_from_arrays(flags, columns, ()).compile(dialect=DIALECT)
    processors = compiled._bind_processors
    params = given_values({c: [r[c] for r in rows] for c in columns})
    return [
        processors[n](params[n]) if n in processors else params[n] for n in compiled.positiontup
    ]


def typed(values: list[Any]) -> list[Any]:
    """Values with their types and, for a timestamp, its instant and whether it is aware."""
    return [[typed_one(v) for v in a] if isinstance(a, list) else typed_one(a) for a in values]


def typed_one(v: Any) -> Any:
    return (type(v), v, v.tzinfo is not None) if isinstance(v, datetime) else (type(v), v)


def test_array_arguments_are_the_values_sqlalchemys_processors_make() -> None:
    """A timestamp of any zone keeps its instant (the driver stores it in UTC), a 0 or 1
    for a bool is a bool, a JSON value is its JSON text, None stays None."""
    got = arguments(ROWS)
    named = dict(zip(_compiled_names(), got, strict=True))

    assert typed(got) == typed(sqlalchemys(ROWS))
    assert named["raised"] == [True, False, None] and type(named["raised"][1]) is bool
    # the microseconds since the Unix epoch (MicrosArray), made timestamps again in SQL
    assert named["at"] == [MICROS_T0, None, MICROS_T0 + 3_600_000_000]
    assert named["notes"] == ['{"k": 1}', '["x"]', "null"]  # SQLAlchemy's JSON null


def test_arrays_of_plain_values_go_to_the_driver_as_lists() -> None:
    """A column's values given as a tuple or a set are sent as a list, as SQLAlchemy's
    (texts joined into one: ``JoinedArray``)."""
    _, build = _compiled(_insert_from_arrays(flags, ("name", "count"), ()), DIALECT)

    assert build({"name": ("a", "b"), "count": {7}, "count_alike": None}) == [None, "a\x1fb", [7]]


@pytest.mark.parametrize(
    ("texts", "sent"),
    [
        (["TJ1", "", "a,b", 'q"\\'], 'TJ1\x1f\x1fa,b\x1fq"\\'),  # joined: most batches
        (("TJ1",), "TJ1"),
        ([], "{}"),
        ([""], '{""}'),  # joined, it would be no text at all
        (["TJ1", None], '{"TJ1",NULL}'),
        (["{TJ1}", "TJ2"], '{"{TJ1}","TJ2"}'),
        (["TJ\x1f1"], '{"TJ\x1f1"}'),
        ([None, 'q"', "b\\"], '{NULL,"q\\"","b\\\\"}'),  # the others quoted, escaped
    ],
)
def test_texts_go_as_one_text_joined_or_else_as_an_array_literal(
    texts: list[str | None], sent: str
) -> None:
    """What the texts are read as is tested on PostgreSQL (tests/integration/
    test_set_based_statements.py); here, that they go joined when they can."""
    assert JoinedArray(String()).process_bind_param(texts, DIALECT) == sent


@pytest.mark.parametrize(
    ("payloads", "sent"),
    [
        ([b'{"a":"\\u001f"}', b"{}", b'{"b":"\\""}'], b'{"a":"\\u001f"}\x1f{}\x1f{"b":"\\""}'),
        ([b"{}"], b"{}"),  # joined: every batch of JSON
        ([b""], b'\x1f{""}'),  # joined, it would be no text at all
        ([b"", b"{}"], b'\x1f{"","{}"}'),  # joined, it would begin with the separator
        ([b"a\x1fb", b'q"\\'], b'\x1f{"a\x1fb","q\\"\\\\"}'),  # the others quoted, escaped
    ],
)
def test_payloads_go_as_one_byte_string_joined_or_else_as_an_array_literal(
    payloads: list[bytes], sent: bytes
) -> None:
    """What the payloads are read as is tested on PostgreSQL (tests/integration/
    test_set_based_statements.py); here, that JSON goes joined: it never holds a raw
    0x1F, whatever its strings hold."""
    assert joined_payloads(payloads) == sent
    envelope = Envelope(
        type="t", producer="p", occurred_at=T0, ticket_id="TJ\x1f1", payload={"s": "a\x1fb\x00"}
    )
    text = envelope.to_json()
    assert b"\x1f" not in text and joined_payloads([text, text]) == text + b"\x1f" + text


def test_a_value_not_text_among_texts_is_refused() -> None:
    with pytest.raises(TypeError):
        JoinedArray(String()).process_bind_param(["TJ1", 1], DIALECT)  # type: ignore[list-item]


def test_a_naive_timestamp_among_a_batchs_rows_is_refused() -> None:
    rows = [dict(ROWS[0]), dict(ROWS[2], at=datetime(2026, 12, 4, 9, 0))]

    with pytest.raises(ValueError, match="naive datetime"):
        arguments(rows)


def test_a_string_for_a_bool_is_refused_as_sqlalchemy_refuses_it() -> None:
    rows = [dict(ROWS[0], raised="yes")]

    with pytest.raises(TypeError):
        sqlalchemys(rows)
    with pytest.raises(TypeError):
        arguments(rows)


def test_a_column_the_rows_hold_alike_goes_as_one_value_through_its_processor() -> None:
    """An empty array and the one value, which its type's processor makes what the
    driver takes (a bool of 0, JSON text); a varied column as an array and NULL. The
    first column goes as an array, alike or not: it carries the number of rows."""
    got = dict(zip(_compiled_names(), arguments(ALIKE), strict=True))
    one = dict(zip(_compiled_names(), arguments(ONE), strict=True))
    varied = dict(zip(_compiled_names(), arguments(ROWS), strict=True))

    assert got["name"] == "d\x1fe\x1ff"
    assert [got[c] for c in COLUMNS[1:]] == [[], [], [], []]
    assert got["raised_alike"] is False and got["count_alike"] == 7
    assert got["at_alike"] == T0 and got["notes_alike"] == '{"k": 1}'
    assert one["name"] == "i" and one["raised"] == [] and one["raised_alike"] is True
    assert varied["count"] == [1, None, 3] and varied["count_alike"] is None


def _compiled_names() -> tuple[str, ...]:
    return tuple(_insert_from_arrays(flags, COLUMNS, ()).compile(dialect=DIALECT).positiontup)


async def test_columns_alike_and_varied_across_a_batch_write_the_same_rows_on_sqlite(
    tmp_path: Path,
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'flags.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            stored = await write_alike_and_varied(conn)
    finally:
        await engine.dispose()

    assert stored == WRITTEN


async def test_insert_new_writes_the_same_rows_on_sqlite(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'flags.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await insert_new(conn, flags, ROWS)
            stored = [tuple(r) for r in await conn.execute(select(flags).order_by(flags.c.name))]
            with pytest.raises(Exception, match="naive datetime"):
                await insert_new(conn, flags, [dict(ROWS[0], name="d", at=datetime(2026, 1, 1))])
    finally:
        await engine.dispose()

    assert stored == STORED
    assert all(r[3] is None or r[3].tzinfo is UTC for r in stored)


async def test_fetch_rows_of_a_write_that_returns_no_rows_is_empty_on_sqlite(
    tmp_path: Path,
) -> None:
    """A write without ``RETURNING`` (dispatch's deadline run) through ``fetch_rows``: done,
    and no rows (SQLAlchemy's result of it has none to read)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'flags.db'}")
    raise_b = update(flags).where(flags.c.name == bindparam("which")).values(raised=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await insert_new(conn, flags, ROWS)
            found = await fetch_rows(conn, raise_b, {"which": "b"})
            raised = (
                await conn.execute(select(flags.c.raised).where(flags.c.name == "b"))
            ).scalar()
    finally:
        await engine.dispose()

    assert found == [] and raised is True
