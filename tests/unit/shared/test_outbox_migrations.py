"""The migrations that take the unique key off each service's outbox event ids (issue 12),
on SQLite, where they rebuild the table: the rows and the unsent rows' index come through
both ways, so what was waiting before a migration is sent after it."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from shared.db import Database, migration_step, outbox_row
from shared.relay import OutboxRelay
from tests.conftest import ROOT, RecordingBus
from tests.unit.shared.test_outbox_inbox import envelope

# each service's migration and the revision before it
DROPS_THE_KEY = {
    "intake": ("intake_0011", "intake_0010"),
    "dispatch": ("dispatch_0010", "dispatch_0009"),
    "sla": ("sla_0007", "sla_0006"),
    "evaluation": ("evaluation_0008", "evaluation_0007"),
    "channels": ("channels_0005", "channels_0004"),
    "knowledge": ("knowledge_0007", "knowledge_0006"),
}


async def _to(db: Database, step: str, revision: str) -> None:
    migrations = ROOT / "services" / db.service / "migrations"
    async with db.engine.begin() as conn:
        await conn.run_sync(
            functools.partial(
                migration_step, script_location=str(migrations), step=step, revision=revision
            )
        )


async def _unsent(db: Database) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).where(db.outbox.c.published_at.is_(None))
        return await conn.scalar(query.select_from(db.outbox)) or 0


@pytest.mark.parametrize("service", sorted(DROPS_THE_KEY))
async def test_unsent_events_are_sent_after_the_migration_both_ways(
    tmp_path: Path, service: str
) -> None:
    revision, before = DROPS_THE_KEY[service]
    db = Database(service, f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    bus = RecordingBus()
    relay = OutboxRelay(db, bus)  # type: ignore[arg-type]
    try:
        await _to(db, "upgrade", before)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("A"))
        await _to(db, "upgrade", revision)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("B"))
        assert await _unsent(db) == 2
        assert await relay.relay_once() == 2

        await _to(db, "downgrade", before)
        async with db.unit_of_work() as uow:
            uow.emit(envelope("C"))
        assert await relay.relay_once() == 1
        assert [e.payload["code"] for e in bus.published] == ["A", "B", "C"]
        sent = bus.published[0]
        with pytest.raises(IntegrityError):  # the downgrade's key is back
            async with db.engine.begin() as conn:
                await conn.execute(insert(db.outbox), [outbox_row(sent)])
    finally:
        await db.dispose()
