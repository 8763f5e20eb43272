"""Sign-in and bearer tokens at the gateway."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from gateway.auth import TokenVerifier
from shared.auth import Role
from shared.errors import PROBLEM_JSON, Unauthorized
from shared.settings import Settings

ECHO = "/api/v1/intake/echo/anything"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def token_for(settings: Settings, **overrides: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "op1",
        "role": "operator",
        "unit_id": None,
        "name": "话务员 测试",
        "iat": now,
        "exp": now + 60,
        "sid": "0" * 32,
        **overrides,
    }
    secret = claims.pop("secret", settings.jwt_secret)
    return {"authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


async def test_login_returns_a_bearer_token_naming_the_user(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    response = await gateway.post(
        "/api/v1/auth/login", json={"username": "unit1", "password": "unit1-secret"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 5 * 60
    assert body["user"] == {
        "username": "unit1",
        "name": "和平区住房和建设委员会",
        "role": "unit",
        "unit_id": "120101-housing",
        "industry": None,
        "district": None,
    }
    claims = jwt.decode(body["access_token"], settings.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == "unit1"
    assert claims["role"] == "unit"
    assert claims["unit_id"] == "120101-housing"
    assert claims["name"] == "和平区住房和建设委员会"
    assert claims["exp"] - claims["iat"] == 5 * 60


async def test_login_with_a_wrong_password_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/auth/login", json={"username": "op1", "password": "unit1-secret"}
    )

    body = assert_problem(response, 401)
    assert "access_token" not in body


async def test_login_of_an_unknown_user_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "op1-secret"}
    )

    assert_problem(response, 401)


async def test_me_describes_the_token_holder(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    response = await gateway.get("/api/v1/auth/me", headers=await login_as("unit1"))

    assert response.status_code == 200
    assert response.json() == {
        "username": "unit1",
        "name": "和平区住房和建设委员会",
        "role": "unit",
        "unit_id": "120101-housing",
        "industry": None,
        "district": None,
    }


async def test_me_without_a_token_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    assert_problem(await gateway.get("/api/v1/auth/me"), 401)


async def test_a_request_without_a_token_is_refused_before_any_service(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get(ECHO)

    body = assert_problem(response, 401)
    assert "service" not in body  # refused at the gateway, the stand-in never answered


async def test_an_expired_token_is_refused(gateway: httpx.AsyncClient, settings: Settings) -> None:
    past = int(time.time()) - 3600
    headers = token_for(settings, iat=past, exp=past + 60)

    body = assert_problem(await gateway.get(ECHO, headers=headers), 401)
    assert "expired" in body["detail"]


async def test_a_token_signed_with_another_secret_is_refused(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    headers = token_for(settings, role="admin", secret="not-the-gateway-secret-but-32-bytes-long")

    assert_problem(await gateway.get(ECHO, headers=headers), 401)


async def test_a_token_naming_an_unknown_role_is_refused(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    assert_problem(await gateway.get(ECHO, headers=token_for(settings, role="mayor")), 401)


async def test_a_token_without_expiry_is_refused(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "op1", "role": "operator", "iat": now}, settings.jwt_secret, algorithm="HS256"
    )

    response = await gateway.get(ECHO, headers={"authorization": f"Bearer {token}"})

    assert_problem(response, 401)


async def test_an_authorization_header_of_another_scheme_is_refused(
    gateway: httpx.AsyncClient, login_as: Callable[..., Any]
) -> None:
    token = (await login_as("op1"))["authorization"].removeprefix("Bearer ")

    assert_problem(await gateway.get(ECHO, headers={"authorization": f"Basic {token}"}), 401)


def test_a_remembered_token_is_refused_once_it_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(settings.jwt_secret)
    now = time.time()
    token = token_for(settings, iat=int(now), exp=int(now) + 60)["authorization"][7:]

    assert verifier.session(token)[0].role is Role.OPERATOR
    assert verifier.session(token)[0].role is Role.OPERATOR  # remembered
    monkeypatch.setattr("gateway.auth.time.time", lambda: now + 61)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.session(token)
