"""The people and channels that may sign in to the gateway, loaded once from a JSON file.

Demo users: every user in the packaged ``demo_users.json`` has the password ``demo12345``
(development and first-look use only; set ``HOTLINE_USERS_FILE`` to a file of your own
anywhere else). ``demo_logins()`` lists them for the embedded runner to print.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shared.auth import Role

DEMO_USERS_FILE = Path(__file__).with_name("demo_users.json")
DEMO_PASSWORD = "demo12345"
DEFAULT_ITERATIONS = 100_000
_SCHEME = "pbkdf2_sha256"


class UserFileError(ValueError):
    """The users file is not usable; the gateway refuses to start with it."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    name: str
    role: Role
    unit_id: str | None
    password_hash: str
    industry: str | None = None  # role authority only (Art 8)
    district: str | None = None  # role agency only: a district work agency (Art 3)

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "name": self.name,
            "role": self.role.value,
            "unit_id": self.unit_id,
            "industry": self.industry,
            "district": self.district,
        }


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    unit_id: str | None
    name: str


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """``pbkdf2_sha256$<iterations>$<salt_b64>$<hash_b64>``."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join((_SCHEME, str(iterations), _b64(salt), _b64(digest)))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    scheme, iterations, salt, digest = encoded.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown password scheme {scheme!r}")
    rounds = int(iterations)
    if rounds < 1:
        raise ValueError("iterations must be positive")
    return rounds, base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def verify_password(password: str, encoded: str) -> bool:
    try:
        iterations, salt, expected = _parse_hash(encoded)
    except (ValueError, binascii.Error):
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


class UserDirectory:
    """Users by name. ``authenticate`` costs one PBKDF2 run whether or not the user exists,
    so response times do not reveal which user names are real."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users: dict[str, User] = {}
        for user in users:
            if user.username in self._users:
                raise UserFileError(f"user {user.username!r} appears twice")
            self._users[user.username] = user
        # Random salt and digest: nothing verifies against it, and it costs nothing to make.
        iterations = max(
            (_parse_hash(u.password_hash)[0] for u in self._users.values()),
            default=DEFAULT_ITERATIONS,
        )
        self._decoy = "$".join(
            (_SCHEME, str(iterations), _b64(os.urandom(16)), _b64(os.urandom(32)))
        )

    def __len__(self) -> int:
        return len(self._users)

    def get(self, username: str) -> User | None:
        return self._users.get(username)

    def authenticate(self, username: str, password: str) -> User | None:
        user = self._users.get(username)
        if user is None:
            verify_password(password, self._decoy)
            return None
        return user if verify_password(password, user.password_hash) else None


def _user_from_json(raw: Any, position: int) -> User:
    if not isinstance(raw, dict):
        raise UserFileError(f"user #{position} is not an object")
    label = repr(raw.get("username") or f"#{position}")
    try:
        username, name, role_value = raw["username"], raw["name"], raw["role"]
        password_hash = raw["password_hash"]
    except KeyError as exc:
        raise UserFileError(f"user {label} lacks {exc.args[0]!r}") from exc
    unit_id = raw.get("unit_id")
    industry = raw.get("industry")
    district = raw.get("district")
    if not (isinstance(username, str) and username and isinstance(name, str) and name):
        raise UserFileError(f"user {label} needs a non-empty username and name")
    try:
        role = Role(role_value)
    except ValueError as exc:
        raise UserFileError(f"user {label} has unknown role {role_value!r}") from exc
    if role is Role.UNIT and not (isinstance(unit_id, str) and unit_id):
        raise UserFileError(f"user {label} has role unit and needs a unit_id")
    if role is not Role.UNIT and unit_id is not None:
        raise UserFileError(f"user {label} has role {role.value}: unit_id must be null")
    if role is Role.AUTHORITY and not (isinstance(industry, str) and industry):
        raise UserFileError(f"user {label} has role authority and needs an industry")
    if role is not Role.AUTHORITY and industry is not None:
        raise UserFileError(f"user {label} has role {role.value}: industry must be null")
    if district is not None and (role is not Role.AGENCY or not isinstance(district, str)):
        raise UserFileError(f"user {label}: only an agency user is bound to a district")
    try:
        _parse_hash(password_hash)
    except (ValueError, binascii.Error, AttributeError) as exc:
        raise UserFileError(
            f"user {label}: password_hash must be {_SCHEME}$<iterations>$<salt>$<hash>"
        ) from exc
    return User(username, name, role, unit_id, password_hash, industry, district)


def read_users(path: Path) -> list[User]:
    """The users in a file ``{"users": [{username, name, role, unit_id, password_hash}]}``."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UserFileError(f"cannot read users file {path}: {exc}") from exc
    raw_users = document.get("users") if isinstance(document, dict) else None
    if not isinstance(raw_users, list):
        raise UserFileError(f"{path}: expected an object with a list 'users'")
    return [_user_from_json(raw, i) for i, raw in enumerate(raw_users, start=1)]


def load_users(users_file: str | Path = "") -> UserDirectory:
    """The users of ``users_file``, or the packaged demo users when it is empty."""
    return UserDirectory(read_users(Path(users_file) if users_file else DEMO_USERS_FILE))


def demo_logins() -> list[DemoLogin]:
    return [
        DemoLogin(u.username, DEMO_PASSWORD, u.role, u.unit_id, u.name)
        for u in read_users(DEMO_USERS_FILE)
    ]
