"""intake_0002 on a database that already holds tickets from intake_0001: the old tickets
keep working, become searchable, and the default policy is in place."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from services.intake.domain import DEFAULT_POLICY
from services.intake.models import policy_versions, ticket_terms, tickets
from services.intake.sealed import open_requester, phone_index
from shared.db import Database, migration_step
from shared.sealing import KeyRing
from tests.conftest import ROOT, at

MIGRATIONS = ROOT / "services" / "intake" / "migrations"
# the tickets table as intake_0001 made it (the model has moved on since)
TICKETS_0001 = sa.table(
    "tickets",
    *(
        sa.column(name)
        for name in (
            "ticket_id channel type urgency matter_code district content requester_name "
            "requester_phone anonymous flagged status registered_at registered_by"
        ).split()
    ),
)


def _step(step: str, revision: str) -> Callable[[Connection], None]:
    return functools.partial(
        migration_step, script_location=str(MIGRATIONS), step=step, revision=revision
    )


def _upgrade_to(revision: str) -> Callable[[Connection], None]:
    return _step("upgrade", revision)


async def test_tickets_from_before_0002_survive_and_become_searchable(tmp_path: Path) -> None:
    db = Database("intake", f"sqlite+aiosqlite:///{tmp_path}/old.db")
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade_to("intake_0001"))
            await conn.execute(
                insert(TICKETS_0001).values(
                    ticket_id="TJ20260115000001",
                    channel="phone",
                    type="complaint",
                    urgency="livelihood",
                    matter_code="HEAT-001",
                    district="120101",
                    content="家中暖气不热，卧室温度仅14℃",
                    requester_name="王强",
                    requester_phone="13812345678",
                    anonymous=False,
                    flagged=False,
                    status="registered",
                    registered_at=at("2026-01-15 09:12"),
                    registered_by="operator",
                )
            )
        await db.migrate(MIGRATIONS)
        async with db.engine.connect() as conn:
            terms = set((await conn.scalars(select(ticket_terms.c.term))).all())
            row = (await conn.execute(select(tickets))).one()
            policy = (await conn.execute(select(policy_versions))).one()
        assert {"暖气", "卧室", "温度"} <= terms
        assert row.ticket_id == "TJ20260115000001" and row.status_at is None
        assert policy.settings == DEFAULT_POLICY
        # intake_0007 sealed the plain requester under the (development) ring
        ring = KeyRing.development()
        assert "13812345678" not in str(tuple(row)) and "王强" not in str(tuple(row))
        assert open_requester(ring, row._mapping)["requester_name"] == "王强"
        assert row.requester_phone_index == phone_index(ring, "13812345678")
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("revision", "previous", "kept"),
    [
        ("intake_0010", "intake_0009", {"ix_tickets_status"}),
        ("intake_0013", "intake_0012", {"ix_tickets_registered_at", "ix_tickets_matter"}),
    ],
)
async def test_sqlite_tickets_keep_the_indexes_postgresql_drops(
    tmp_path: Path, revision: str, previous: str, kept: set[str]
) -> None:
    """intake_0010 (HOT updates) and intake_0013 (fewer entries a registration writes) drop
    indexes on PostgreSQL only: SQLite, which rewrites only the indexes of the columns an
    update sets, keeps filtering through them, both ways."""
    db = Database("intake", f"sqlite+aiosqlite:///{tmp_path}/hotline.db")

    def indexes(sync_conn: Connection) -> set[str]:
        return {i["name"] for i in sa.inspect(sync_conn).get_indexes("tickets")}

    try:
        for step, to in (("upgrade", revision), ("downgrade", previous)):
            async with db.engine.begin() as conn:
                await conn.run_sync(_step(step, to))
                assert kept <= await conn.run_sync(indexes)
    finally:
        await db.dispose()
