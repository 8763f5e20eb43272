"""Browser tests: the whole system embedded in a subprocess on a free port (SQLite, the
in-process bus, a controllable clock), driven through Debian's chromium by Playwright."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port

CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("HOTLINE_SCREENSHOTS", ROOT / "var" / "screenshots"))
START_TIMEOUT = 90.0
PASSWORD = "demo12345"

if not Path(CHROMIUM).exists():
    # a missing browser is a failed run, never a silently skipped suite (.ci/run installs it)
    raise RuntimeError(f"no chromium at {CHROMIUM}: apt-get install chromium")
from playwright import sync_api  # noqa: E402


class System:
    """The running platform: its URL and an API client for setting up test data."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        if user not in self._tokens:
            r = httpx.post(
                f"{self.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD}
            )
            r.raise_for_status()
            self._tokens[user] = r.json()["access_token"]
        return self._tokens[user]

    def api(self, user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token(user)}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def eventually(self, check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        """Events travel through the outbox relay: wait (bounded) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def register(self, body: dict[str, Any]) -> str:
        r = self.api("operator", "POST", "/api/v1/intake/tickets", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["ticket_id"])

    def wait_state(self, ticket_id: str, state: str, round_: int = 1) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            r = self.api("agency", "GET", f"/api/v1/dispatch/tickets/{ticket_id}")
            found = r.json() if r.status_code == 200 else None
            if found and found["state"] == state and found["round"] == round_:
                return found  # type: ignore[no-any-return]
            return None

        return self.eventually(check, f"{ticket_id} {state} round {round_}")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    work = tmp_path_factory.mktemp("console-e2e")
    port = free_port()
    env = {
        **os.environ,
        "HOTLINE_ENV": "test",
        "HOTLINE_DB_URL": f"sqlite+aiosqlite:///{work}/hotline.db",
        "HOTLINE_BUS_URL": "memory://",
        "HOTLINE_PORT": str(port),
        "HOTLINE_CLOCK": "controllable",
        "HOTLINE_LOG_JSON": "false",
        "HOTLINE_LOG_LEVEL": "WARNING",
        "HOTLINE_RELAY_POLL_SECONDS": "0.1",
    }
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError((work / "server.log").read_text()[-3000:])
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the system did not start in time")
            time.sleep(0.3)
        yield System(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Session:
    """One person at one browser: signs in and goes about their work."""

    def __init__(self, system: System, context: Any) -> None:
        self.system = system
        self.context = context
        self.page = context.new_page()

    def login(self, user: str) -> Session:
        page = self.page
        page.goto(f"{self.system.url}/login")
        page.get_by_label("用户名").fill(user)
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_load_state()
        assert "/login" not in page.url, page.content()[:2000]
        return self

    def goto(self, path: str) -> Any:
        return self.page.goto(self.system.url + path)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def reload_until(self, path: str, text: str, timeout: float = 20.0) -> None:
        """Reload ``path`` until ``text`` appears (the services work through events)."""
        deadline = time.monotonic() + timeout
        while True:
            self.goto(path)
            if text in self.page.content():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on {path}")
            time.sleep(0.3)


@pytest.fixture
def people(system: System, browser: Any) -> Iterator[Callable[[str], Session]]:
    """``people("operator")``: a signed-in browser session of its own for that user."""
    contexts: list[Any] = []

    def open_as(user: str) -> Session:
        context = browser.new_context(
            viewport={"width": 1366, "height": 768}, locale="zh-CN", timezone_id="Asia/Shanghai"
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return Session(system, context).login(user)

    yield open_as
    for context in contexts:
        context.close()


def ticket_number(text: str) -> str:
    found = re.search(r"TJ\d{14}", text)
    assert found, text[:500]
    return found.group(0)
