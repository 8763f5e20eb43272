"""Production refuses what would make it unsafe (issue 9, defect 5), each refusal naming
the setting to change."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
GOOD = {
    "env": "production",
    "service_secret": "9f2c1e7a4b8d0c3f6e5a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "jwt_secret": "0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8",
    "users_file": "/etc/hotline/users.json",
}


def refusal(**changes: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**{**GOOD, **changes})
    return str(refused.value)


def test_a_production_configuration_with_real_keys_starts() -> None:
    settings = Settings(**GOOD)
    settings.check_gateway_production()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"service_secret": "dev-internal-secret-change-me"}, "HOTLINE_SERVICE_SECRET"),
        ({"jwt_secret": "dev-jwt-secret-change-me"}, "HOTLINE_JWT_SECRET"),
        ({"service_secret": "x"}, "HOTLINE_SERVICE_SECRET"),
        ({"jwt_secret": GOOD["service_secret"]}, "equal"),
        ({"clock": "controllable"}, "HOTLINE_CLOCK"),
        ({"jwt_ttl_minutes": 10**7}, "HOTLINE_JWT_TTL_MINUTES"),
        ({"jwt_ttl_minutes": 31}, "HOTLINE_JWT_TTL_MINUTES"),
        ({"refresh_ttl_minutes": 24 * 60 + 1}, "HOTLINE_REFRESH_TTL_MINUTES"),
    ],
)
def test_production_refuses_unsafe_settings(changes: dict[str, Any], named: str) -> None:
    message = refusal(**changes)
    assert named in message
    assert "set" in message  # says what to do


def test_development_keeps_its_defaults() -> None:
    Settings(env="development").check_gateway_production()


@pytest.mark.parametrize("users_file", ["", str(ROOT / "gateway" / "demo_users.json")])
def test_the_production_gateway_refuses_the_demo_users(users_file: str) -> None:
    settings = Settings(**{**GOOD, "users_file": users_file})
    with pytest.raises(ValueError, match="HOTLINE_USERS_FILE"):
        settings.check_gateway_production()


_SECRET_LITERAL = re.compile(r"[A-Za-z0-9_!+.\-]*secret[A-Za-z0-9_!+.\-]*", re.IGNORECASE)


def repository_secrets() -> set[str]:
    """Every secret-looking literal in the repository (hyphenated words around 'secret':
    defaults, compose fallbacks, test keys)."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found: set[str] = set()
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".yml", ".yaml", ".md", ".sh", ".json", ".toml", ""}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found.update(m for m in _SECRET_LITERAL.findall(text) if "-" in m and len(m) >= 8)
    return found


def test_production_refuses_every_secret_written_in_the_repository() -> None:
    secrets = repository_secrets()
    assert "dev-jwt-secret-change-me" in secrets  # the scan sees the compose fallbacks
    accepted = []
    for secret in sorted(secrets):
        try:
            Settings(**{**GOOD, "service_secret": secret})
        except ValidationError:
            continue
        accepted.append(secret)
    assert accepted == []
