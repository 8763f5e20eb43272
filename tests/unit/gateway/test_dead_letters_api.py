"""Dead letters through the gateway: every consuming service lists, retries and discards its
parked events at ``/api/v1/<service>/dead-letters``, for admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from hotline.embedded import embedded_app, settle
from shared.access import EVERY_ROLE, access
from shared.db import UnitOfWork
from shared.events import Envelope
from shared.service import CallerDep, CtxDep, ServiceContext, ServiceSpec
from shared.settings import Settings
from tests.unit.gateway.test_embedded_runner import migrations


class Dispatch:
    """A stand-in dispatch whose handler fails for the tickets in ``broken``."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.handled: list[str] = []

    async def on_ping(self, ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
        if envelope.ticket_id in self.broken:
            raise KeyError(f"未知工单 {envelope.ticket_id}")
        self.handled.append(f"{envelope.ticket_id}:{envelope.payload['n']}")


def specs(root: Path, dispatch: Dispatch) -> dict[str, ServiceSpec]:
    router = APIRouter()

    @router.post("/ping/{ticket_id}/{n}", status_code=202)
    @access(*EVERY_ROLE)
    async def ping(ticket_id: str, n: int, ctx: CtxDep, caller: CallerDep) -> None:
        async with ctx.db.unit_of_work() as uow:
            uow.emit(
                Envelope(
                    type="ticket.pinged",
                    occurred_at=datetime.now(UTC),
                    ticket_id=ticket_id,
                    producer=ctx.name,
                    payload={"n": n},
                )
            )

    return {
        "intake": ServiceSpec(
            name="intake", title="intake", migrations=migrations(root / "intake"), routers=[router]
        ),
        "dispatch": ServiceSpec(
            name="dispatch",
            title="dispatch",
            migrations=migrations(root / "dispatch"),
            routers=[],
            handlers={"ticket.pinged": dispatch.on_ping},
        ),
    }


@pytest.fixture
async def hotline(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, Dispatch, object]]:
    settings = Settings(
        env="test",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hotline.db'}",
        consumer_max_attempts=2,
        jwt_secret="embedded-test-jwt-secret-of-32-bytes-or-more",
    )
    dispatch = Dispatch()
    async with embedded_app(settings, specs=specs(tmp_path / "m", dispatch)) as app:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hotline"
        ) as client:
            for user in ("admin", "operator"):
                r = await client.post(
                    "/api/v1/auth/login", json={"username": user, "password": "demo12345"}
                )
                client.headers[f"x-test-{user}"] = r.json()["access_token"]
            yield client, dispatch, app


def as_(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {client.headers[f'x-test-{user}']}"}


async def test_an_admin_lists_retries_and_discards_parked_events(
    hotline: tuple[httpx.AsyncClient, Dispatch, object],
) -> None:
    client, dispatch, app = hotline
    admin = as_(client, "admin")
    dispatch.broken = {"TJ1", "TJ2"}
    for ticket, n in (("TJ1", 1), ("TJ1", 2), ("TJ2", 1), ("TJ3", 1)):
        assert (await client.post(f"/api/v1/intake/ping/{ticket}/{n}", headers=admin)).is_success
    await settle(app)  # type: ignore[arg-type]
    assert dispatch.handled == ["TJ3:1"]

    parked = (await client.get("/api/v1/dispatch/dead-letters", headers=admin)).json()
    assert [(p["key"], p["attempts"], p["payload"]["payload"]["n"]) for p in parked] == [
        ("TJ1", 2, 1),
        ("TJ1", 0, 2),
        ("TJ2", 2, 1),
    ]
    assert parked[0]["error"] == "KeyError: '未知工单 TJ1'"
    assert parked[1]["behind"] == parked[0]["id"]

    dispatch.broken = set()
    retried = await client.post(
        f"/api/v1/dispatch/dead-letters/{parked[0]['id']}/retry", headers=admin
    )
    assert retried.status_code == 200, retried.text
    assert [r["state"] for r in retried.json()] == ["retried", "retried"]
    discarded = await client.post(
        f"/api/v1/dispatch/dead-letters/{parked[2]['id']}/discard", headers=admin
    )
    assert [r["state"] for r in discarded.json()] == ["discarded"]

    assert dispatch.handled == ["TJ3:1", "TJ1:1", "TJ1:2"]
    assert (await client.get("/api/v1/dispatch/dead-letters", headers=admin)).json() == []
    history = await client.get("/api/v1/dispatch/dead-letters?state=retried", headers=admin)
    assert [r["resolved_by"] for r in history.json()] == ["admin", "admin"]
    again = await client.post(
        f"/api/v1/dispatch/dead-letters/{parked[0]['id']}/retry", headers=admin
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


async def test_only_an_admin_sees_dead_letters_and_unknown_ones_are_404(
    hotline: tuple[httpx.AsyncClient, Dispatch, object],
) -> None:
    client, _, _ = hotline

    refused = await client.get("/api/v1/dispatch/dead-letters", headers=as_(client, "operator"))
    missing = await client.post(
        "/api/v1/dispatch/dead-letters/999/retry", headers=as_(client, "admin")
    )

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
