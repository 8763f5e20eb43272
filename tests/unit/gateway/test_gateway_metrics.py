"""The gateway's /metrics: its port is public, so the page exists only for the scrape
token (HOTLINE_METRICS_TOKEN); requests are counted by route template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.unit.gateway.conftest import PASSWORDS, stand_in_service


async def test_without_a_token_set_there_is_no_metrics_page(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/metrics")).status_code == 404
    r = await gateway.get("/metrics", headers={"authorization": "Bearer "})
    assert r.status_code == 404


async def test_metrics_answer_the_scrape_token_only_and_count_by_route(
    gateway_with: Callable[..., Any], settings: Any
) -> None:
    settings.metrics_token = "scrape-token-of-the-monitoring-system"
    services = {"intake": stand_in_service("intake", settings)}
    async with gateway_with(services) as client:
        assert (await client.get("/healthz")).status_code == 200
        login = await client.post(
            "/api/v1/auth/login", json={"username": "op1", "password": PASSWORDS["op1"]}
        )
        user = {"authorization": f"Bearer {login.json()['access_token']}"}
        await client.get("/api/v1/intake/tickets/TJ1", headers=user)
        assert (await client.get("/metrics", headers=user)).status_code == 404  # a user's token
        assert (await client.get("/metrics")).status_code == 404
        wrong = {"authorization": "Bearer scrape-token-of-another-system"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 404
        good = {"authorization": f"Bearer {settings.metrics_token}"}
        r = await client.get("/metrics", headers=good)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'hotline_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        " 1.0" in text
    )
    # the proxy's route names its service, never the raw path (no ticket ids as labels)
    assert 'route="/api/v1/intake/{path:path}"' in text
    assert "TJ1" not in text
