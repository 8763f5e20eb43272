"""The arguments shared/db.py hands the driver for a batch's rows sent as arrays (one per
column, PostgreSQL): the values SQLAlchemy's own bind processors make, without running
them element by element. And the same rows written through the same functions on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import UTCDateTime, _compiled, _insert_from_arrays, insert_new

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
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


def arguments(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> list[Any]:
    """What ``insert_new`` hands the driver for ``rows`` on PostgreSQL."""
    _, build = _compiled(_insert_from_arrays(flags, columns, ()), DIALECT)
    return build({c: [r[c] for r in rows] for c in columns})


def sqlalchemys(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> list[Any]:
    """The same, each array through SQLAlchemy's own bind processor."""
    compiled = _insert_from_arrays(flags, columns, ()).compile(dialect=DIALECT)
    processors = compiled._bind_processors
    params = {c: [r[c] for r in rows] for c in columns}
    return [
        processors[n](params[n]) if n in processors else params[n] for n in compiled.positiontup
    ]


def typed(values: list[Any]) -> list[Any]:
    """Values with their types and, for a timestamp, its instant and whether it is aware."""
    return [
        [(type(v), v, v.tzinfo is not None) if isinstance(v, datetime) else (type(v), v) for v in a]
        for a in values
    ]


def test_array_arguments_are_the_values_sqlalchemys_processors_make() -> None:
    """A timestamp of any zone keeps its instant (the driver stores it in UTC), a 0 or 1
    for a bool is a bool, a JSON value is its JSON text, None stays None."""
    got = arguments(ROWS)

    assert typed(got) == typed(sqlalchemys(ROWS))
    assert got[1] == [True, False, None] and type(got[1][1]) is bool
    assert got[3] == [T0, None, T0 + timedelta(hours=1)]
    assert got[4] == ['{"k": 1}', '["x"]', "null"]  # SQLAlchemy's JSON null


def test_arrays_of_plain_values_go_to_the_driver_as_lists() -> None:
    """A column's values given as a tuple or a set are sent as a list, as SQLAlchemy's."""
    _, build = _compiled(_insert_from_arrays(flags, ("name", "count"), ()), DIALECT)

    assert build({"name": ("a", "b"), "count": {7}}) == [["a", "b"], [7]]


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
