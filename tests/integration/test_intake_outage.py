"""Registration through a PostgreSQL restart, on a private PostgreSQL (the shared one is
never stopped): every answer is 201 or 503 with Retry-After, never 500; a client that
retries with its Idempotency-Key gets exactly one ticket per key; and no 503 is given for
a ticket that was stored."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from services.intake.app import SPEC
from services.intake.handlers import catalog_readiness
from services.intake.models import tickets
from shared.auth import SignedAs
from shared.bus import LogBus
from shared.clock import SystemClock
from shared.service import create_service_app
from shared.settings import Settings
from tests.integration.conftest import ROOT, free_port
from tests.unit.intake.conftest import CALLERS, MATTERS, ticket

pytestmark = pytest.mark.asyncio(loop_scope="module")
SCRIPT = str(ROOT / "scripts" / "postgres.sh")


@pytest.fixture(scope="module")
def private_pg() -> Any:
    """A PostgreSQL of this module's own (its own port and run dir), restartable."""
    run_dir = tempfile.mkdtemp(prefix="hotline-pg-outage-")
    os.chmod(run_dir, 0o755)  # the server runs as the postgres user
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_PG_URL"}
    env.update(HOTLINE_PG_PORT=str(free_port()), HOTLINE_RUN_DIR=run_dir, HOTLINE_PG_FSYNC="off")

    def script(command: str) -> str:
        done = subprocess.run([SCRIPT, command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = script("start")
    url = next(line.split("=", 1)[1] for line in out.split() if line.startswith("HOTLINE_PG_URL="))
    try:
        yield url, script
    finally:
        script("reset")


@pytest_asyncio.fixture(loop_scope="module")
async def intake(private_pg: Any) -> AsyncIterator[Any]:
    url, _ = private_pg
    settings = Settings(db_url=url, env="test", db_pool_size=4)
    bus = LogBus()
    await bus.start()
    try:  # stopped however the setup ends: the log's aiosqlite thread would hold pytest
        app = create_service_app(SPEC, settings, bus=bus, clock=SystemClock())
        async with app.router.lifespan_context(app):
            now = SystemClock().now()
            await bus.publish([e.envelope(producer="test", occurred_at=now) for e in MATTERS])
            async with asyncio.timeout(30):
                while (await catalog_readiness(app.state.ctx))["matters_known"] < len(MATTERS):
                    await asyncio.sleep(0.05)
            yield app
    finally:
        await bus.stop()


async def test_a_postgres_restart_answers_503_with_retry_after_and_files_each_ticket_once(
    intake: Any, private_pg: Any
) -> None:
    _, script = private_pg
    ctx = intake.state.ctx
    statuses: Counter[int] = Counter()
    missing_retry_after = 0
    answered_201_without_key = 0
    transport = httpx.ASGITransport(app=intake, raise_app_exceptions=False)
    client = httpx.AsyncClient(
        transport=transport,
        base_url="http://intake",
        timeout=30,
        auth=SignedAs(ctx.settings.service_secret, CALLERS["operator"]),
    )

    async def post(body: dict[str, Any], key: str | None) -> httpx.Response:
        nonlocal missing_retry_after
        headers: dict[str, str] = {}
        if key:
            headers["Idempotency-Key"] = key
        r = await client.post("/tickets", json=body, headers=headers)
        statuses[r.status_code] += 1
        if r.status_code == 503 and "retry-after" not in r.headers:
            missing_retry_after += 1
        return r

    async def with_key(i: int) -> str:
        """A careful client: retries with its key until it has its ticket (for as long as
        the restart may take on a loaded machine: a time limit, not a count of tries)."""
        body = ticket(address=f"河西区友谊路{i}号")
        deadline = time.monotonic() + 150
        while True:
            r = await post(body, f"outage-{i}")
            if r.status_code == 201:
                return str(r.json()["ticket_id"])
            assert time.monotonic() < deadline, f"{i} not registered: {r.status_code} {r.text}"
            await asyncio.sleep(0.05)

    async def without_key(i: int) -> None:
        nonlocal answered_201_without_key
        r = await post(ticket(address=f"南开区长虹街道{i}号"), None)
        answered_201_without_key += r.status_code == 201
        if r.status_code != 201:
            await asyncio.sleep(0.05)  # as a client would before its next try

    restarted = asyncio.Event()

    async def load(start: Callable[[int], Any], at_least: int, concurrency: int) -> list[Any]:
        """``concurrency`` clients filing numbered tickets: at least ``at_least``, and on
        until PostgreSQL is back, so the restart falls mid-load however fast intake is."""
        numbers = iter(range(1_000_000))

        async def one_client() -> list[Any]:
            done = []
            while (i := next(numbers)) < at_least or not restarted.is_set():
                done.append(await start(i))
            return done

        clients = await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return [result for done in clients for result in done]

    async def restart() -> None:
        await asyncio.sleep(0.3)  # mid-load
        await asyncio.to_thread(script, "stop")
        await asyncio.to_thread(script, "start")
        restarted.set()

    async with asyncio.timeout(180):
        keyed, _, _ = await asyncio.gather(
            load(with_key, 120, 8),
            load(without_key, 120, 4),
            restart(),
        )
    await client.aclose()

    assert statuses[500] == 0, statuses
    assert set(statuses) <= {201, 503}, statuses
    assert statuses[503] > 0, "the restart was not noticed: the test proves nothing"
    assert missing_retry_after == 0
    assert len(keyed) >= 120
    assert len(set(keyed)) == len(keyed)  # one ticket per key
    async with ctx.db.engine.connect() as conn:
        by_key = await conn.scalar(
            select(func.count()).where(tickets.c.address.like("河西区友谊路%"))
        )
        unkeyed = await conn.scalar(
            select(func.count()).where(tickets.c.address.like("南开区长虹街道%"))
        )
    assert by_key == len(keyed)
    # a stored ticket was always answered 201 (a 503 would make the client file it again)
    assert unkeyed == answered_201_without_key
