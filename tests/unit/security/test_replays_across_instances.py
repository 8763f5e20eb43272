"""Replays across instances (issue 9, service identity): a signed state-changing request
sent again to another instance of the same service, inside the signature's window, is
refused through the nonce the first instance recorded in the service's database; a read is
only remembered per process (a replayed read changes nothing)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from shared.auth import Caller, Role, sign_headers
from tests.unit.intake.conftest import Intake, running_intake

CITIZEN = Caller(sub="citizen_web", role=Role.CITIZEN)
LOOKUP = orjson.dumps({"ticket_id": "TJ20260302000001", "phone": "13920001234"})


def signed(intake: Intake, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    headers = sign_headers(intake.ctx.settings.service_secret, CITIZEN, method, path, body=body)
    return {**headers, "content-type": "application/json"}


async def send(
    intake: Intake, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> httpx.Response:
    return await intake.http.request(method, path, headers=headers, content=body)


async def test_a_write_replayed_to_another_instance_is_refused(tmp_path: Path) -> None:
    async with (
        running_intake(tmp_path, shared_nonces=True) as first,
        running_intake(tmp_path, shared_nonces=True) as second,
    ):
        headers = signed(first, "POST", "/tickets/lookup", LOOKUP)
        original = await send(first, "POST", "/tickets/lookup", headers, LOOKUP)
        assert original.status_code == 404  # no such ticket: the request itself was run
        replayed = await send(second, "POST", "/tickets/lookup", headers, LOOKUP)
        assert replayed.status_code == 401, replayed.text
        assert "replay" in replayed.json()["detail"]
        # another write, signed afresh, is its own request on either instance
        fresh = signed(first, "POST", "/tickets/lookup", LOOKUP)
        assert (await send(second, "POST", "/tickets/lookup", fresh, LOOKUP)).status_code == 404

        # a read replayed elsewhere is not recorded (the documented guarantee)
        read = signed(first, "GET", "/matters")
        assert (await send(first, "GET", "/matters", read)).status_code == 200
        assert (await send(second, "GET", "/matters", read)).status_code == 200
        assert (await send(first, "GET", "/matters", read)).status_code == 401


async def test_old_nonces_are_forgotten_after_twice_the_window(tmp_path: Path) -> None:
    async with running_intake(tmp_path, shared_nonces=True) as intake:
        nonces = intake.ctx.nonces
        assert nonces is not None
        assert await nonces.first_use("n-1", now=1000.0)
        assert not await nonces.first_use("n-1", now=1001.0)
        await nonces.prune(now=1000.0 + 2 * nonces.window + 1)
        assert await nonces.first_use("n-1", now=1200.0)


async def test_without_shared_nonces_another_instance_takes_the_replay(tmp_path: Path) -> None:
    """Embedded mode's default (SQLite, one process per service): nonces per process only."""
    async with running_intake(tmp_path) as first, running_intake(tmp_path) as second:
        assert first.ctx.nonces is None
        headers = signed(first, "POST", "/tickets/lookup", LOOKUP)
        assert (await send(first, "POST", "/tickets/lookup", headers, LOOKUP)).status_code == 404
        assert (await send(first, "POST", "/tickets/lookup", headers, LOOKUP)).status_code == 401
        assert (await send(second, "POST", "/tickets/lookup", headers, LOOKUP)).status_code == 404
