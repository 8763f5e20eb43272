"""The read authorization matrix (issue 9): every GET operation of the merged OpenAPI, as
every role and as a unit on its own and on another unit's ticket, against the expected
outcome table in ``read_matrix.json``. A new operation without a row fails; so does any
change of outcome, and any read of another unit's ticket (a leak)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.security.conftest import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

TABLE = Path(__file__).with_name("read_matrix.json")  # HOTLINE_UPDATE_READ_MATRIX=1 rewrites
# who asks: a role's demo user; a unit on its own ticket and on another unit's
CALLERS = {
    "anonymous": None,
    "operator": "operator",
    "agency": "agency",
    "admin": "admin",
    "authority": "authority",
    "govservice": "govservice",
    "supervisor": "supervisor",
    "citizen": "citizen_web",
    "unit_own": "unit_water",
    "unit_other": "unit_heping_housing",
}
SAMPLES = {
    "unit_id": "city-water",
    "code": "WATER-001",
    "year": "2026",
    "version": "1",
    "dead_id": "1",
}
OUTSIDERS = ("unit_other", "citizen", "supervisor", "authority")  # none may see the ticket
_PARAM = re.compile(r"\{([^}]+)\}")


def outcome(status: int) -> str:
    if 200 <= status < 300:
        return "allow"
    if status in (401, 403):
        return "deny"
    if status == 404:
        return "absent"
    return str(status)


def _query(op: dict[str, Any]) -> dict[str, str]:
    params = {}
    for p in op.get("parameters", ()):
        if p.get("in") == "query" and p.get("required"):
            schema = p.get("schema", {})
            if schema.get("type") == "integer":
                params[p["name"]] = str(schema.get("minimum", 1))
            elif "enum" in schema:
                params[p["name"]] = schema["enum"][0]
            else:
                params[p["name"]] = "供水"
    return params


async def observed(platform: Platform) -> dict[str, dict[str, str]]:
    doc = (await platform.client.get("/openapi.json")).json()
    ticket = platform.tickets["unit_water"]
    table: dict[str, dict[str, str]] = {}
    for path, item in sorted(doc["paths"].items()):
        op = item.get("get")
        if op is None or path.startswith("/api/v1/channels/wechat"):
            continue
        url = _PARAM.sub(
            lambda m: ticket if m.group(1) == "ticket_id" else SAMPLES.get(m.group(1), "x"), path
        )
        row = {}
        for label, user in CALLERS.items():
            r = await platform.call(user, "GET", url, params=_query(op))
            row[label] = outcome(r.status_code)
            if label in OUTSIDERS and r.status_code == 200 and ticket in r.text:
                row[label] = "LEAK"  # a list or page that names the other unit's ticket
        table[f"GET {path}"] = row
    return table


async def test_every_read_matches_the_expected_table_and_nothing_leaks(
    platform: Platform,
) -> None:
    seen = await observed(platform)
    if os.environ.get("HOTLINE_UPDATE_READ_MATRIX"):  # then review the diff by hand
        TABLE.write_text(json.dumps(seen, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    expected = json.loads(TABLE.read_text())
    missing = sorted(set(seen) - set(expected))
    assert missing == [], f"operations without an expected row in {TABLE.name}: {missing}"
    changed = {
        op: {
            who: (expected[op].get(who), got)
            for who, got in row.items()
            if expected[op].get(who) != got
        }
        for op, row in seen.items()
    }
    changed = {op: diff for op, diff in changed.items() if diff}
    assert changed == {}, f"outcomes differ from {TABLE.name} (expected, got): {changed}"
    leaks = [op for op, row in seen.items() if "{ticket_id}" in op and row["unit_other"] == "allow"]
    assert leaks == [], f"another unit reads this unit's ticket: {leaks}"
    public = [op for op, row in seen.items() if row["anonymous"] == "allow"]
    # the health checks, and the public case page (Art 30: published, anonymised cases)
    assert public == ["GET /api/v1/knowledge/cases/public", "GET /healthz", "GET /readyz"], public
