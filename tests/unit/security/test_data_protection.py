"""Data protection (issue 9, defect 10): phone, ID and card numbers written in a ticket's
content never leave intake unmasked — not in events, not in dispatch, not in any outbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.unit.security.conftest import WATER_OUTAGE, Platform, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

ID_NUMBER = "120101199001011239"
MOBILE = "13811112222"
CARD = "6222021234567890128"  # passes Luhn


def databases(platform: Platform) -> dict[str, Path]:
    base = Path(platform.settings.db_url.removeprefix("sqlite+aiosqlite:///"))
    return {p.stem.removeprefix("hotline-"): p for p in base.parent.glob("hotline-*.db")}


def rows_containing(db: Path, needle: str) -> list[str]:
    found = []
    with sqlite3.connect(db, timeout=30) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - test scan
                if any(isinstance(v, str) and needle in v for v in row):
                    found.append(table)
    return found


async def test_numbers_in_the_content_are_masked_in_every_copy_leaving_intake(
    platform: Platform,
) -> None:
    content = f"停水三天，我的身份证{ID_NUMBER}，手机{MOBILE}，银行卡{CARD}被扣费"
    ticket = await platform.register({**WATER_OUTAGE, "content": content})
    await platform.dispatched(ticket)

    assignment = await platform.call("operator", "GET", f"/api/v1/dispatch/tickets/{ticket}")
    timeline = await platform.call("operator", "GET", f"/api/v1/tickets/{ticket}/timeline")
    for text in (assignment.text, timeline.text):
        for number in (ID_NUMBER, MOBILE, CARD):
            assert number not in text

    async def settled() -> bool:
        r = await platform.call("operator", "GET", f"/api/v1/sla/tickets/{ticket}/clocks")
        return r.status_code == 200

    await eventually(settled, "the SLA clocks")
    for service, db in databases(platform).items():
        if service == "intake":  # its own record keeps them; what it publishes does not
            for number in (ID_NUMBER, MOBILE, CARD):
                assert "outbox" not in rows_containing(db, number)
            continue
        for number in (ID_NUMBER, MOBILE, CARD):
            assert rows_containing(db, number) == [], (service, number)


async def test_lists_mask_the_numbers_and_the_full_record_keeps_them(platform: Platform) -> None:
    content = f"投诉物业，联系电话{MOBILE}"
    ticket = await platform.register({**WATER_OUTAGE, "content": content})
    listed = await platform.call("operator", "GET", "/api/v1/intake/tickets", params={"limit": 5})
    [row] = [t for t in listed.json()["data"] if t["ticket_id"] == ticket]
    assert MOBILE not in row["content"]
    full = await platform.call("operator", "GET", f"/api/v1/intake/tickets/{ticket}")
    assert MOBILE in full.json()["content"]  # the operator's audited full read


async def test_the_lead_unit_reads_the_requester_for_its_reply_and_is_audited(
    platform: Platform,
) -> None:
    ticket = platform.tickets["unit_water"]

    async def lead_reads() -> dict[str, str] | None:
        r = await platform.call("unit_water", "GET", f"/api/v1/intake/tickets/{ticket}/requester")
        return r.json() if r.status_code == 200 else None

    full = await eventually(lead_reads, "the lead unit's read")
    assert full["requester_phone"] == WATER_OUTAGE["requester"]["phone"]  # type: ignore[index]
    other = await platform.call(
        "unit_heping_housing", "GET", f"/api/v1/intake/tickets/{ticket}/requester"
    )
    assert other.status_code == 403
    assert WATER_OUTAGE["requester"]["phone"] not in other.text  # type: ignore[index]
    audit = await platform.call(
        "agency", "GET", "/api/v1/intake/audit/requester-reads", params={"ticket_id": ticket}
    )
    assert ("unit_water", "lead unit contact (Art 13)") in [
        (a["reader"], a["purpose"]) for a in audit.json()["data"]
    ]
