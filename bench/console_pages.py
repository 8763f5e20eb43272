"""Server time of each console page with 100,000 tickets in the database (issue 10).
Prints JSON.

Runs the embedded system in this process (SQLite files in a temporary folder), registers a
few tickets through the API, clones them in the services' own tables up to BENCH_TICKETS
(intake's tickets and search words, dispatch's assignments, the SLA's tickets and clocks),
then times each page through the gateway app as a signed-in browser would request it (no
network: the figure is the server's time): p50 and p95 of the wall-clock time, and the
process's CPU time per request (all threads), which other work on the machine inflates less;
with the load average at the start and the end."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TICKETS = int(os.environ.get("BENCH_TICKETS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
TEMPLATES = [
    ("HOUSE-001", "120101", "complaint", "楼道墙体开裂渗水已经两个月，物业一直不修"),
    ("URBAN-003", "120104", "complaint", "路面有大坑，电动车经过很危险，希望尽快修补"),
    ("WATER-001", "120103", "help", "从早上开始停水，家里老人做饭困难"),
    ("HOUSE-001", "120101", "help", "小区电梯经常停运，物业不处理"),
]


def clone(db: Path, table: str, key: str, numbering: str, total: int) -> int:
    """Copy the table's rows round-robin until it holds ``total`` rows per template set,
    giving each copy a new ticket number (``numbering``: SQL for the n-th number)."""
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        have = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if have == 0:
            return 0
        copy = [c for c in cols if c != "id"]
        select = ", ".join(numbering if c == key else f"t.{c}" for c in copy)
        conn.execute(
            f"""WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
            INSERT INTO {table} ({", ".join(copy)})
            SELECT {select} FROM seq
            JOIN (SELECT *, row_number() OVER () - 1 AS k FROM {table}) t
              ON t.k = seq.n % ?""",
            (total, have),
        )
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def fill(folder: Path, total: int) -> dict[str, int]:
    number = "'TJ2025' || printf('%08d', seq.n)"
    counts = {
        "intake.tickets": clone(
            folder / "hotline-intake.db", "tickets", "ticket_id", number, total
        ),
        "dispatch.assignments": clone(
            folder / "hotline-dispatch.db", "assignments", "ticket_id", number, total
        ),
        "sla.tickets": clone(folder / "hotline-sla.db", "tickets", "ticket_id", number, total),
        "sla.clocks": clone(folder / "hotline-sla.db", "clocks", "ticket_id", number, total),
    }
    with sqlite3.connect(folder / "hotline-intake.db") as conn:  # search words of the copies
        conn.execute(
            """INSERT OR IGNORE INTO ticket_terms (term, ticket_pk)
            SELECT tt.term, t2.id FROM tickets t2
            JOIN tickets t1 ON t1.content = t2.content AND t1.id <= ?
            JOIN ticket_terms tt ON tt.ticket_pk = t1.id WHERE t2.id > ?""",
            (len(TEMPLATES), len(TEMPLATES)),
        )
    for name in ("intake", "dispatch", "sla"):
        with sqlite3.connect(folder / f"hotline-{name}.db") as conn:
            conn.execute("ANALYZE")
    return counts


async def sign_in(client: httpx.AsyncClient, user: str) -> None:
    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    answer = await client.post(
        "/login",
        data={"username": user, "password": "demo12345", "csrf_token": token.group(1)},
    )
    assert answer.status_code == 303, answer.text


async def timed(call: Any) -> dict[str, Any]:
    """``call`` once to warm, then ROUNDS times: wall-clock p50/p95 and CPU ms per call."""
    status = (await call()).status_code
    times = []
    cpu0 = time.process_time()
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / ROUNDS
    times.sort()
    return {
        "status": status,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, math.ceil(0.95 * len(times)) - 1)], 1),
        "cpu_ms": round(cpu, 1),
    }


async def main() -> None:
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="hotline-bench-console-"))
    os.environ.update(
        HOTLINE_DB_URL=f"sqlite+aiosqlite:///{folder}/hotline.db",
        HOTLINE_LOG_LEVEL="WARNING",
    )
    from shared.settings import Settings

    settings = Settings()
    try:
        await measure(settings, folder, load_before)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def measure(settings: Any, folder: Path, load_before: tuple[float, ...]) -> None:
    from hotline.embedded import embedded_app, settle

    async with embedded_app(settings) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
            login = await api.post(
                "/api/v1/auth/login", json={"username": "operator", "password": "demo12345"}
            )
            headers = {"authorization": f"Bearer {login.json()['access_token']}"}
            first = ""
            for matter, district, kind, content in TEMPLATES:
                body = {
                    "channel": "phone",
                    "type": kind,
                    "matter_code": matter,
                    "district": district,
                    "content": content,
                    "requester": {"name": "陈伟", "phone": "13512345678"},
                }
                made = await api.post("/api/v1/intake/tickets", json=body, headers=headers)
                assert made.status_code == 201, made.text
                first = first or made.json()["ticket_id"]
            await settle(app)
        started = time.perf_counter()
        counts = fill(folder, TICKETS)
        fill_seconds = time.perf_counter() - started

        pages = {
            # status filters: one most tickets have, one none has (a rare state's queue)
            "operator": [
                "/operator",
                "/tickets",
                "/tickets?q=物业",
                "/tickets?status=dispatched",
                "/tickets?status=return_review",
                f"/tickets/{first}",
            ],
            "unit_heping_housing": ["/unit/inbox", f"/tickets/{first}"],
            "agency": [
                "/agency/dispatch",
                "/agency/returns",
                "/agency/determinations",
                "/agency/board",
                "/agency/flagged",
                "/agency/hotspots",
                "/agency/supervisions",
                "/evaluation/exemptions",
                "/evaluation/revisits",
                "/evaluation/scores",
                "/knowledge",
            ],
            "admin": ["/admin/catalog", "/admin/calendar/2026", "/admin/policy", "/admin/users"],
        }
        # the API call behind the slowest pages, timed alone: what the page cannot beat
        apis = {
            "operator": [
                "/api/v1/intake/tickets?q=物业&limit=20",
                "/api/v1/intake/tickets?limit=20",
                "/api/v1/intake/tickets?status=dispatched&limit=20",
                "/api/v1/intake/tickets?status=return_review&limit=20",
            ],
            "unit_heping_housing": ["/api/v1/dispatch/inbox?limit=20"],
            "agency": [
                "/api/v1/sla/board?status=all&limit=20",
                "/api/v1/dispatch/tickets?state=pending_dispatch&limit=20",
                f"/api/v1/tickets/{first}/timeline",
            ],
        }
        results: dict[str, Any] = {}
        api_results: dict[str, Any] = {}
        for user, paths in apis.items():
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
                login = await api.post(
                    "/api/v1/auth/login", json={"username": user, "password": "demo12345"}
                )
                headers = {"authorization": f"Bearer {login.json()['access_token']}"}
                for path in paths:
                    api_results[f"{user} {path}"] = await timed(
                        lambda: api.get(path, headers=headers)  # noqa: B023
                    )
        for user, paths in pages.items():
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as browser:
                await sign_in(browser, user)
                for path in paths:
                    results[f"{user} {path}"] = await timed(
                        lambda: browser.get(path)  # noqa: B023
                    )
    print(
        json.dumps(
            {
                "tickets": counts,
                "fill_seconds": round(fill_seconds, 1),
                "rounds": ROUNDS,
                "load_average": {
                    "start": [round(x, 2) for x in load_before],
                    "end": [round(x, 2) for x in os.getloadavg()],
                },
                "pages": results,
                "api_behind_pages": api_results,
            },
            ensure_ascii=False,
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
