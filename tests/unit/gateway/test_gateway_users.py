"""The users file: loading, validation and passwords."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_gateway_app
from gateway.identities import open_identities
from gateway.users import (
    DEMO_PASSWORD,
    UserFileError,
    demo_logins,
    hash_password,
    load_users,
    verify_password,
)
from shared.auth import Role
from shared.settings import Settings

EXPECTED_DEMO_USERS = {
    "operator": ("operator", None),
    "agency": ("agency", None),
    "agency_hexi": ("agency", None),  # the Hexi district work agency (Art 3)
    "admin": ("admin", None),
    "authority": ("authority", None),
    "authority_urban": ("authority", None),
    "govservice": ("govservice", None),
    "supervisor": ("supervisor", None),
    "citizen_web": ("citizen", None),
    "unit_heping_housing": ("unit", "120101-housing"),
    "unit_hexi_housing": ("unit", "120103-housing"),
    "unit_heping_urban": ("unit", "120101-urban"),
    "unit_water": ("unit", "city-water"),
}


def test_every_demo_user_signs_in_with_the_demo_password() -> None:
    users = load_users("")
    logins = demo_logins()

    assert {d.username: (d.role.value, d.unit_id) for d in logins} == EXPECTED_DEMO_USERS
    for login in logins:
        assert login.password == DEMO_PASSWORD
        user = users.authenticate(login.username, login.password)
        assert user is not None, login.username
        assert user.name
        assert users.authenticate(login.username, "wrong-password") is None


def test_a_password_verifies_only_against_its_own_hash() -> None:
    encoded = hash_password("s3cret", iterations=1_000)

    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert not verify_password("s3cret", "md5$1$abc$def")


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"role": "unit", "unit_id": None}, "needs a unit_id"),
        ({"role": "operator", "unit_id": "120101-housing"}, "unit_id must be null"),
        ({"role": "mayor"}, "unknown role"),
        ({"password_hash": "plain-text"}, "password_hash"),
        ({"name": ""}, "non-empty"),
    ],
)
def test_a_users_file_with_a_bad_user_is_refused(
    write_users: Callable[[list[dict[str, Any]]], Path],
    user_entry: Callable[..., dict[str, Any]],
    entry: dict[str, Any],
    complaint: str,
) -> None:
    path = write_users([{**user_entry("u1", "operator"), **entry}])

    with pytest.raises(UserFileError, match=complaint):
        load_users(path)


def test_a_users_file_naming_a_user_twice_is_refused(
    write_users: Callable[[list[dict[str, Any]]], Path],
    user_entry: Callable[..., dict[str, Any]],
) -> None:
    path = write_users([user_entry("u1", "operator"), user_entry("u1", "admin")])

    with pytest.raises(UserFileError, match="twice"):
        load_users(path)


def test_a_unit_user_carries_its_unit(
    write_users: Callable[[list[dict[str, Any]]], Path],
    user_entry: Callable[..., dict[str, Any]],
) -> None:
    path = write_users([user_entry("u1", "unit", unit_id="city-water", password="pw")])

    user = load_users(path).authenticate("u1", "pw")

    assert user is not None
    assert (user.role, user.unit_id) == (Role.UNIT, "city-water")


async def test_the_gateway_does_not_start_with_a_bad_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text('{"users": [{"username": "x"}]}')

    app = create_gateway_app(
        Settings(users_file=str(path), db_url=f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    )
    with pytest.raises(UserFileError):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(("setting", "on_connections"), [(2.5, "2.5"), (0, None)])
async def test_the_gateway_database_plans_with_the_page_cost_setting(
    settings: Settings, setting: float, on_connections: str | None
) -> None:
    """HOTLINE_DB_RANDOM_PAGE_COST on the gateway's own connections, as on the services'
    (shared/db.py ``RANDOM_PAGE_COST``); 0 leaves the server's own."""
    store = await open_identities(settings.model_copy(update={"db_random_page_cost": setting}))
    try:
        assert store.db._server_settings().get("random_page_cost") == on_connections
    finally:
        await store.db.engine.dispose()
