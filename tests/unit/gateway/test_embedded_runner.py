"""The embedded runner: services started behind the gateway in one process, sharing one
bus and one clock. Stand-in service specs replace the real services here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from hotline.embedded import banner, embedded_app
from shared.access import EVERY_ROLE, access
from shared.db import UnitOfWork
from shared.events import Envelope
from shared.service import CallerDep, CtxDep, ServiceContext, ServiceSpec
from shared.settings import Settings

ENV_PY = "from shared.migrations import run_env\n\nrun_env()\n"
# the spine's tables as every service's migrations leave them
FIRST_MIGRATION = """
from shared.migrations import create_outbox_and_inbox, drop_inbox_processed_at

revision = "stand_in_0001"
down_revision = None


def upgrade() -> None:
    create_outbox_and_inbox()
    drop_inbox_processed_at()
"""


def migrations(root: Path) -> Path:
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "versions" / "0001_initial.py").write_text(FIRST_MIGRATION)
    return root


def stand_in_specs(root: Path, received: list[Envelope]) -> dict[str, ServiceSpec]:
    router = APIRouter()

    @router.get("/whoami")
    @access(*EVERY_ROLE)
    async def whoami(ctx: CtxDep, caller: CallerDep) -> dict[str, Any]:
        return {
            "service": ctx.name,
            "caller": caller.model_dump(mode="json"),
            "bus": id(ctx.bus),
            "clock": id(ctx.clock),
        }

    @router.post("/ping", status_code=202)
    @access(*EVERY_ROLE)
    async def ping(ctx: CtxDep, caller: CallerDep) -> dict[str, str]:
        envelope = Envelope(
            type="ticket.pinged",
            occurred_at=datetime.now(UTC),
            ticket_id="T1",
            producer=ctx.name,
            payload={"by": caller.sub},
        )
        async with ctx.db.unit_of_work() as uow:
            uow.emit(envelope)
        return {"event_id": str(envelope.event_id)}

    async def on_ping(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
        received.append(envelope)

    return {
        "intake": ServiceSpec(
            name="intake", title="intake", migrations=migrations(root / "intake"), routers=[router]
        ),
        "dispatch": ServiceSpec(
            name="dispatch",
            title="dispatch",
            migrations=migrations(root / "dispatch"),
            routers=[router],
            handlers={"ticket.pinged": on_ping},
        ),
    }


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hotline.db'}",
        relay_poll_seconds=0.02,
        jwt_secret="embedded-test-jwt-secret-of-32-bytes-or-more",
        users_file="",  # the packaged demo users
    )


async def test_the_services_run_behind_the_gateway_on_one_bus_and_clock(
    tmp_path: Path, embedded_settings: Settings
) -> None:
    received: list[Envelope] = []
    specs = stand_in_specs(tmp_path / "migrations", received)

    async with embedded_app(embedded_settings, specs=specs) as app:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hotline"
        ) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "unit_water", "password": "demo12345"}
            )
            headers = {"authorization": f"Bearer {login.json()['access_token']}"}
            intake = (await client.get("/api/v1/intake/whoami", headers=headers)).json()
            dispatch = (await client.get("/api/v1/dispatch/whoami", headers=headers)).json()
            ready = await client.get("/readyz")
            ping = await client.post("/api/v1/intake/ping", headers=headers)
            for _ in range(250):
                if received:
                    break
                await asyncio.sleep(0.02)

    assert intake["service"] == "intake"
    assert intake["caller"]["unit_id"] == "city-water"
    assert dispatch["service"] == "dispatch"
    assert (intake["bus"], intake["clock"]) == (dispatch["bus"], dispatch["clock"])
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["services"]) == {"intake", "dispatch"}
    assert ping.status_code == 202
    assert [str(e.event_id) for e in received] == [ping.json()["event_id"]]
    assert (tmp_path / "var" / "hotline-intake.db").exists()


async def test_the_services_stop_when_the_embedded_app_closes(
    tmp_path: Path, embedded_settings: Settings
) -> None:
    specs = stand_in_specs(tmp_path / "migrations", [])

    async with embedded_app(embedded_settings, specs=specs) as app:
        upstreams = app.state.upstreams
    tasks = {t.get_name() for t in asyncio.all_tasks() if not t.done()}

    assert all(client.is_closed for client in upstreams.clients.values())
    assert not any(name.startswith(("intake", "dispatch", "relay")) for name in tasks)


def test_the_banner_names_the_url_the_docs_and_every_demo_login() -> None:
    text = banner(Settings(host="0.0.0.0"))

    assert "http://127.0.0.1:8000" in text
    assert "http://127.0.0.1:8000/docs" in text
    assert "unit_water" in text and "city-water" in text
    assert "demo12345" in text
    assert text.count("demo12345") == 13


async def test_embedded_mode_has_one_clock_endpoint_starting_at_the_configured_offset(
    tmp_path: Path, embedded_settings: Settings
) -> None:
    """One shared clock, one endpoint (/api/v1/clock, admin), and HOTLINE_CLOCK_OFFSET_SECONDS
    honoured; the services' own /internal/clock routes are not there."""
    settings = embedded_settings.model_copy(
        update={"clock": "controllable", "clock_offset_seconds": 30 * 86400}
    )
    specs = stand_in_specs(tmp_path / "migrations", [])
    async with embedded_app(settings, specs=specs) as app:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hotline"
        ) as client:

            async def signed_in(username: str) -> dict[str, str]:
                login = await client.post(
                    "/api/v1/auth/login", json={"username": username, "password": "demo12345"}
                )
                return {"authorization": f"Bearer {login.json()['access_token']}"}

            admin, operator = await signed_in("admin"), await signed_in("operator")
            now = (await client.get("/api/v1/clock", headers=admin)).json()
            ahead = datetime.fromisoformat(now["now"]) - datetime.now(UTC)
            assert now["controllable"] is True and 29 * 86400 < ahead.total_seconds() < 31 * 86400
            moved = await client.put(
                "/api/v1/clock", headers=operator, json={"advance_seconds": 3600}
            )
            assert moved.status_code == 403
            moved = await client.put(
                "/api/v1/clock", headers=admin, json={"advance_seconds": 86400}
            )
            assert moved.status_code == 200
            seen = (await client.get("/api/v1/dispatch/whoami", headers=admin)).json()
            assert seen["clock"] == id(app.state.clock)
            for service in ("intake", "dispatch"):
                r = await client.get(f"/api/v1/{service}/internal/clock", headers=admin)
                assert r.status_code == 404
