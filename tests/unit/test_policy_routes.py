"""One versioned policy, one route shape, one answer in every service: ``GET /policy`` and
``POST /policy/versions``; a version dated in the past is 422 naming ``effective_from`` (in
Shanghai time), a second version on the same date is 409, and only an admin adds one."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import Caller, Role, SignedAs
from shared.bus import LogBus
from shared.clock import ManualClock
from shared.service import create_service_app
from shared.settings import Settings
from tests.conftest import at

NOW = at("2026-03-02 09:00")
ADMIN = Caller(sub="admin", role=Role.ADMIN)
AGENCY = Caller(sub="agency", role=Role.AGENCY)


class Service:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def call(
        self, method: str, path: str, caller: Caller, json: Any = None
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            auth = SignedAs(self.settings.service_secret, caller)
            return await c.request(method, path, json=json, auth=auth)


@pytest.fixture(params=["intake", "dispatch", "sla", "knowledge", "evaluation"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    spec = importlib.import_module(f"services.{request.param}.app").SPEC
    settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp_path}/hotline.db", env="test")
    bus = LogBus()
    await bus.start()
    app = create_service_app(spec, settings, bus=bus, clock=ManualClock(NOW))
    try:
        async with app.router.lifespan_context(app):
            yield Service(app, settings)
    finally:
        await bus.stop()


async def test_every_service_answers_policy_versions_the_same_way(service: Service) -> None:
    current = await service.call("GET", "/policy", ADMIN)
    assert current.status_code == 200, current.text
    settings = current.json()["in_force"]["settings"]

    def version(when: Any) -> dict[str, Any]:
        return {"effective_from": when.isoformat(), "settings": settings}

    past = await service.call("POST", "/policy/versions", ADMIN, version(NOW - timedelta(hours=1)))
    assert past.status_code == 422, past.text
    assert past.json()["errors"][0]["field"] == "effective_from"
    assert "2026-03-02 08:00:00 Asia/Shanghai" in past.json()["detail"]

    later = NOW + timedelta(days=1)
    assert (
        await service.call("POST", "/policy/versions", AGENCY, version(later))
    ).status_code == 403
    added = await service.call("POST", "/policy/versions", ADMIN, version(later))
    assert added.status_code == 201, added.text
    assert len(added.json()["versions"]) == len(current.json()["versions"]) + 1
    twin = await service.call("POST", "/policy/versions", ADMIN, version(later))
    assert twin.status_code == 409, twin.text
    assert twin.json()["rule"] == "one policy version per effective date"
