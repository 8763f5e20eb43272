"""Fuzzing (issue 9): schemathesis over the merged OpenAPI, as three roles, against the
embedded platform in its own process, bounded in time: no operation answers 5xx. And every
operation documents the refusals it can give as problem+json."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from tests.unit.security.conftest import DEMO_PASSWORD, ROOT

ROLES = ("operator", "agency", "unit_water")  # admin left out: it would disable the others
SECONDS_PER_ROLE = int(os.environ.get("HOTLINE_FUZZ_SECONDS", "30"))
PROBLEMS = ("401", "403", "404", "409", "413", "422", "429")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m hotline`` on a free port with its own databases."""
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        HOTLINE_ENV="test",
        HOTLINE_DB_URL=f"sqlite+aiosqlite:///{tmp}/hotline.db",
        HOTLINE_PORT=str(port),
        HOTLINE_JWT_SECRET="fuzz-jwt-key-0123456789abcdef0123456789",
        HOTLINE_SERVICE_SECRET="fuzz-service-key-0123456789abcdef01234",
        HOTLINE_PASSWORD_HASH_MEMORY_KIB="8192",
        HOTLINE_LOG_LEVEL="WARNING",
    )
    log = (tmp / "hotline.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp / "hotline.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("the platform did not get ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _server_errors_logged(tmp / "hotline.log")


def _server_errors_logged(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "unhandled error" not in text, text[text.index("unhandled error") - 2000 :][:6000]


def test_every_operation_documents_its_refusals_as_problem_json(served: str) -> None:
    doc = httpx.get(f"{served}/openapi.json", timeout=30).json()
    missing = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status in PROBLEMS:
                content = op["responses"].get(status, {}).get("content", {})
                if "application/problem+json" not in content:
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == []


@pytest.mark.parametrize("user", ROLES)
def test_no_fuzzed_request_gets_a_server_error(served: str, user: str) -> None:
    login = httpx.post(
        f"{served}/api/v1/auth/login",
        json={"username": user, "password": DEMO_PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{served}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "5",
            "--request-timeout",
            "60",
            "--max-time",
            str(SECONDS_PER_ROLE),
            "--phases",
            "examples,coverage,fuzzing",
            "--exclude-path-regex",
            "^/api/v1/auth/logout$",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS_PER_ROLE + 120,
    )
    out = run.stdout + run.stderr
    cases = re.findall(r"(\d+) generated", out)
    print(f"{user}: {cases[-1] if cases else '?'} cases\n{out[-1500:]}")
    assert run.returncode == 0, out[-6000:]
