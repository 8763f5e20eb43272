"""Liveness of the gateway and readiness of the platform behind it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx


async def test_healthz_answers_while_the_process_lives(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_is_200_when_every_service_is_ready(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["services"]) == {"intake", "dispatch"}
    assert body["services"]["intake"]["status"] == "ready"


async def test_readyz_is_503_when_a_service_is_not_ready(
    gateway_with: Callable[..., Any], stand_in: Callable[..., Any]
) -> None:
    services = {"intake": stand_in("intake"), "dispatch": stand_in("dispatch", ready=False)}
    async with gateway_with(services) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["services"]["intake"]["status"] == "ready"
    assert body["services"]["dispatch"]["http_status"] == 503
    assert body["services"]["dispatch"]["database"] == "down"


async def test_readyz_is_503_when_a_service_cannot_be_reached(
    gateway_with: Callable[..., Any], stand_in: Callable[..., Any], failing_transport: Any
) -> None:
    services = {
        "intake": stand_in("intake"),
        "evaluation": failing_transport(httpx.ConnectError("connection refused")),
    }
    async with gateway_with(services) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["services"]["evaluation"]["status"] == "unreachable"
