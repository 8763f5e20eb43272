"""The requester-read audit (issue 9, defect 9): duplicate hints are audited, and the log
is hash-chained so that a changed or deleted row is found, by row, by a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.unit.security.conftest import ROOT, WATER_OUTAGE, Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


def intake_db(platform: Platform) -> Path:
    base = platform.settings.db_url.removeprefix("sqlite+aiosqlite:///")
    return Path(base).with_name("hotline-intake.db")


async def tamper(platform: Platform, sql: str) -> list[Any]:
    """Someone with write access to intake's database (through its own engine, so the
    service's busy timeout applies)."""
    intake = platform.app.state.upstreams.services["intake"].transport.app
    async with intake.state.ctx.db.engine.begin() as conn:
        result = await conn.execute(text(sql))
        return list(result.all()) if result.returns_rows else []


def verify_command(platform: Platform) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOTLINE_DB_URL": platform.settings.db_url, "HOTLINE_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "shared.audit", "verify", "intake", "requester_reads"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def reads(platform: Platform, ticket_id: str) -> list[dict[str, str]]:
    r = await platform.call(
        "agency", "GET", "/api/v1/intake/audit/requester-reads", params={"ticket_id": ticket_id}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_a_duplicate_hint_is_an_audited_read_with_numbers_masked(
    platform: Platform,
) -> None:
    phone = "13700001111"
    first = await platform.register({**WATER_OUTAGE, "requester": {"name": "王芳", "phone": phone}})
    r = await platform.call(
        "operator",
        "POST",
        "/api/v1/intake/tickets",
        json={**WATER_OUTAGE, "requester": {"name": "王芳", "phone": phone}},
    )
    assert r.status_code == 201, r.text
    [hint] = [h for h in r.json()["likely_duplicates"] if h["ticket_id"] == first]
    assert "120101199001011239" not in hint["content"]  # the ID number in the earlier text
    audited = await reads(platform, first)
    assert [(a["reader"], a["purpose"]) for a in audited] == [("operator", "duplicate hint")]


async def test_the_audit_chain_verifies_and_names_the_first_changed_row(
    platform: Platform,
) -> None:
    for _ in range(3):
        ticket = await platform.register()
        r = await platform.call("operator", "GET", f"/api/v1/intake/tickets/{ticket}")
        assert r.status_code == 200
    intact = verify_command(platform)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact" in intact.stdout

    ids = [row[0] for row in await tamper(platform, "SELECT id FROM requester_reads ORDER BY id")]
    victim = ids[len(ids) // 2]
    await tamper(platform, f"UPDATE requester_reads SET reader = 'nobody' WHERE id = {victim}")
    broken = verify_command(platform)
    assert broken.returncode == 1
    assert f"row id {victim}" in broken.stdout

    await tamper(platform, f"UPDATE requester_reads SET reader = 'operator' WHERE id = {victim}")
    await tamper(platform, f"DELETE FROM requester_reads WHERE id = {ids[1]}")
    deleted = verify_command(platform)
    assert deleted.returncode == 1
    assert f"row id {ids[2]}" in deleted.stdout
