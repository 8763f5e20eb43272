"""The spine on the real Kafka and PostgreSQL: instances joining and leaving a consumer group
mid-load never stall it, and two instances of every service share the work with nothing
lost and nothing done twice."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

import asyncpg
import httpx
import pytest

from shared.auth import Caller, Role, SignedAs
from shared.settings import SERVICES, Settings
from tests.integration.conftest import System

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLACES = [
    ("120101", "和平区南京路"),
    ("120102", "河东区大直沽"),
    ("120103", "河西区友谊路"),
    ("120104", "南开区鞍山西道"),
    ("120105", "河北区中山路"),
    ("120106", "红桥区丁字沽"),
]
CHANNELS = ["phone", "wechat_mini", "web", "wechat_official"]
OPERATOR = Caller(sub="operator", role=Role.OPERATOR)
_numbers = itertools.count(1)


def ticket() -> dict[str, Any]:
    n = next(_numbers)
    district, street = PLACES[n % len(PLACES)]
    return {
        "channel": CHANNELS[n % len(CHANNELS)],
        "type": "help",
        "matter_code": "WATER-001",
        "district": district,
        "address": f"{street}{n}号",
        "content": f"第{n}号楼从早上开始停水，家里有老人，请尽快恢复供水",
        "requester": {"name": "王建国", "phone": f"139{n:08d}"},
    }


async def register_many(system: System, n: int, *, intake: str | None = None) -> list[str]:
    """``n`` tickets from 8 concurrent clients, through the gateway or straight to one
    intake instance (signed as the gateway signs)."""
    ids: list[str] = []
    secret = Settings().service_secret
    todo = iter(range(n))

    async def client_loop() -> None:
        if intake is None:
            client = system.client("operator")
        else:
            client = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{system.ports[intake]}",
                timeout=10,
                auth=SignedAs(secret, OPERATOR),
            )
        async with client:
            for _ in todo:
                if intake is None:
                    r = await client.post("/api/v1/intake/tickets", json=ticket())
                else:
                    r = await client.post("/tickets", json=ticket())
                assert r.status_code == 201, r.text
                ids.append(r.json()["ticket_id"])

    await asyncio.gather(*(client_loop() for _ in range(8)))
    return ids


class Counts:
    """What every schema holds about a set of tickets, read straight from PostgreSQL."""

    def __init__(self, system: System) -> None:
        self.url = system.db_url.replace("postgresql+asyncpg", "postgresql")

    async def of(self, ids: list[str]) -> dict[str, Any]:
        conn = await asyncpg.connect(self.url)
        try:
            q = conn.fetchval
            return {
                "intake_dispatched": await q(
                    "SELECT count(*) FROM intake.tickets"
                    " WHERE ticket_id = ANY($1) AND status = 'dispatched'",
                    ids,
                ),
                "dispatch_assignments": await q(
                    "SELECT count(*) FROM dispatch.assignments"
                    " WHERE ticket_id = ANY($1) AND state = 'dispatched'",
                    ids,
                ),
                "dispatch_events": await q(
                    "SELECT count(*) FROM dispatch.outbox WHERE key = ANY($1)"
                    " AND payload::json->>'type' = 'ticket.dispatched'",
                    ids,
                ),
                "sla_acceptance_clocks": await q(
                    "SELECT count(*) FROM sla.clocks WHERE ticket_id = ANY($1)"
                    " AND kind = 'acceptance'",
                    ids,
                ),
                "sla_deadline_events": await q(
                    "SELECT count(*) FROM sla.outbox WHERE key = ANY($1)"
                    " AND payload::json->>'type' = 'sla.deadline_set'"
                    " AND payload::json->'payload'->>'clock' = 'acceptance'",
                    ids,
                ),
                "evaluation_tickets": await q(
                    "SELECT count(*) FROM evaluation.tickets WHERE ticket_id = ANY($1)", ids
                ),
                "evaluation_handlings": await q(
                    "SELECT count(*) FROM evaluation.handlings WHERE ticket_id = ANY($1)", ids
                ),
                "dead_letters": sum(
                    [
                        await q(f"SELECT count(*) FROM {s}.dead_letters")  # noqa: S608
                        for s in SERVICES
                    ]
                ),
            }
        finally:
            await conn.close()


def complete(ids: list[str]) -> dict[str, Any]:
    n = len(ids)
    return {
        "intake_dispatched": n,
        "dispatch_assignments": n,
        "dispatch_events": n,
        "sla_acceptance_clocks": n,
        "sla_deadline_events": n,
        "evaluation_tickets": n,
        "evaluation_handlings": n,
        "dead_letters": 0,
    }


async def drained(system: System, ids: list[str], within: float) -> float:
    """Seconds until every schema holds exactly the tickets' effects (bounded)."""
    counts = Counts(system)
    start = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - start < within:
        last = await counts.of(ids)
        if last == complete(ids):
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise AssertionError(f"not drained in {within} s: {last} of {len(ids)}\n{system.logs()}")


async def test_instances_joining_mid_load_never_stall_and_the_first_ones_keep_consuming(
    system: System,
) -> None:
    first = await register_many(system, 60)
    system.start("dispatch", name="dispatch-2")
    system.start("sla", name="sla-2")
    during = await register_many(system, 120)  # while the newcomers join the groups
    await system.wait_ready("dispatch-2")
    await system.wait_ready("sla-2")
    await drained(system, first + during, within=45)

    # the newcomers crash; the first instances take their partitions back
    system.kill("dispatch-2")
    system.kill("sla-2")
    after = await register_many(system, 40)
    await drained(system, first + during + after, within=60)
    for process in ("dispatch", "sla"):
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{system.ports[process]}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["consumer"] == "running"


async def test_two_instances_of_every_service_share_the_work_exactly_once(
    system: System,
) -> None:
    for service in SERVICES:
        system.start(service, name=f"{service}-2")
    for service in SERVICES:
        await system.wait_ready(f"{service}-2")
    via_gateway, via_second = await asyncio.gather(
        register_many(system, 100), register_many(system, 100, intake="intake-2")
    )
    ids = via_gateway + via_second

    await drained(system, ids, within=60)
    for service in ("dispatch", "sla", "evaluation"):
        log = (system.workdir / f"{service}-2.log").read_text(errors="replace")
        assert re.search(r'"msg":"partitions assigned".*"partitions":[1-9]', log), service
    for service in SERVICES:
        system.kill(f"{service}-2")


async def test_a_killed_consumer_restarts_and_works_off_the_backlog(system: System) -> None:
    first = await register_many(system, 40)
    await drained(system, first, within=60)
    system.kill("dispatch")
    backlog = await register_many(system, 40)  # waits on the bus while dispatch is down
    system.start("dispatch")
    await system.wait_ready("dispatch")

    await drained(system, first + backlog, within=60)
