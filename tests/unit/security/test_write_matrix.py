"""The write authorization matrix (issue 9): every operation of the merged OpenAPI that is not
a read (POST, PUT, PATCH, DELETE), as every role and as a unit on its own and on another
unit's ticket, against the expected table ``write_matrix.json``. Each request carries a
body made from the operation's own schema (required fields, first enum values, minimum
numbers), so a role the route lets through gets as far as the handler.

Outcomes: ``deny`` (401/403), ``absent`` (404), ``pass`` (anything else: done, or refused
for the object's state or the input's content — the caller got past authorization). A new
operation without a row fails; so does any change of outcome. A caller outside the ticket
(another unit, a citizen, a supervisor, the other industry's authority) that gets a 2xx on
it is a ``LEAK``, and there must be none."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.security.conftest import Platform
from tests.unit.security.test_read_matrix import _PARAM, CALLERS, OUTSIDERS, SAMPLES

pytestmark = pytest.mark.asyncio(loop_scope="module")

TABLE = Path(__file__).with_name("write_matrix.json")  # HOTLINE_UPDATE_WRITE_MATRIX=1 rewrites
WRITES = ("post", "put", "patch", "delete")
# signing out ends the caller's session (every later probe would be a 401), and the channel
# adapters answer their own signatures (WeChat, Open311's api_key), not users
SKIPPED = ("/api/v1/auth/logout", "/wechat/", "/open311/")
# least privileged first: what a privileged caller changes comes after the others' probes
ORDER = (
    "anonymous",
    "citizen",
    "supervisor",
    "unit_other",
    "authority",
    "govservice",
    "unit_own",
    "operator",
    "agency",
    "admin",
)
WHEN = "2026-03-02T09:00:00+08:00"


def example(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> Any:
    """The smallest value ``schema`` accepts, as far as a schema can tell."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return example(doc["components"]["schemas"][name], doc, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return example(options[0], doc, depth + 1) if options else None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        props = schema.get("properties", {})
        return {n: example(props[n], doc, depth + 1) for n in schema.get("required", ())}
    if kind == "array":
        item = example(schema.get("items", {}), doc, depth + 1)
        return [item] * int(schema.get("minItems", 0))
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return WHEN
        if fmt == "date":
            return WHEN[:10]
        if fmt in ("uri", "url"):
            return "https://example.org/a"
        text = "供水" * max(1, (int(schema.get("minLength", 1)) + 1) // 2)
        return text[: int(schema.get("maxLength", len(text)))]
    return None


def body_of(op: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": example(content["application/json"].get("schema", {}), doc)}
    return {}


def outcome(status: int) -> str:
    if status in (401, 403):
        return "deny"
    if status == 404:
        return "absent"
    return "pass"


async def observed(platform: Platform) -> dict[str, dict[str, str]]:
    doc = (await platform.client.get("/openapi.json")).json()
    ticket = platform.tickets["unit_water"]
    ops = [
        (path, method, op)
        for path, item in sorted(doc["paths"].items())
        for method, op in sorted(item.items())
        if method in WRITES and not any(s in path for s in SKIPPED)
    ]
    table: dict[str, dict[str, str]] = {f"{m.upper()} {p}": {} for p, m, _ in ops}
    for path, method, op in ops:
        url = _PARAM.sub(
            lambda m: ticket if m.group(1) == "ticket_id" else SAMPLES.get(m.group(1), "x"), path
        )
        row = table[f"{method.upper()} {path}"]
        for label in ORDER:
            r = await platform.call(CALLERS[label], method.upper(), url, **body_of(op, doc))
            row[label] = outcome(r.status_code)
            if label in OUTSIDERS and "{ticket_id}" in path and 200 <= r.status_code < 300:
                row[label] = "LEAK"  # a write on another unit's (or nobody's) ticket
    return table


async def test_every_write_matches_the_expected_table_and_nothing_leaks(
    platform: Platform,
) -> None:
    seen = await observed(platform)
    if os.environ.get("HOTLINE_UPDATE_WRITE_MATRIX"):  # then review the diff by hand
        TABLE.write_text(json.dumps(seen, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    expected = json.loads(TABLE.read_text())
    missing = sorted(set(seen) - set(expected))
    assert missing == [], f"operations without an expected row in {TABLE.name}: {missing}"
    leaks = {op: [who for who, got in row.items() if got == "LEAK"] for op, row in seen.items()}
    assert {op: who for op, who in leaks.items() if who} == {}
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
    # nobody writes without signing in (a sign-in with a wrong password is a 401 too)
    assert [op for op, row in seen.items() if row["anonymous"] != "deny"] == []
