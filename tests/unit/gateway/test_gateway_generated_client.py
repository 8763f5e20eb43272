"""An integrator's view: a Python client generated with openapi-python-client from the
merged OpenAPI document drives a ticket's life — registered, dispatched, accepted, replied
— through the gateway, with the typed models and operation names the document gives."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest

from hotline.embedded import embedded_app, settle
from shared.settings import Settings

PACKAGE = "hotline_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


def generate(spec: bytes, where: Path) -> None:
    path = where / "openapi.json"
    path.write_bytes(spec)
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(path),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=where,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout, done.stdout  # every operation and model generated


@pytest.fixture
def client_package(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def part(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_drives_a_ticket_through_its_life(
    tmp_path: Path, client_package: Path
) -> None:
    settings = Settings(env="test", db_url=f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    async with embedded_app(settings) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hotline") as raw:
            spec = (await raw.get("/openapi.json")).content
        assert orjson.loads(spec)["x-unavailable-services"] == []
        generate(spec, client_package)
        models = part("models")
        api = "api"
        login = part(f"{api}.auth.login")
        register = part(f"{api}.intaketickets.register_ticket")
        get_ticket = part(f"{api}.intaketickets.get_ticket")
        get_assignment = part(f"{api}.dispatchassignments.get_assignment")
        accept = part(f"{api}.dispatchassignments.accept_ticket")
        complete = part(f"{api}.dispatchassignments.complete_ticket")
        Client = part("client").Client
        AuthenticatedClient = part("client").AuthenticatedClient

        def signed_in(token: str) -> Any:
            return AuthenticatedClient(
                base_url="http://hotline", token=token, httpx_args={"transport": transport}
            )

        anonymous = Client(base_url="http://hotline", httpx_args={"transport": transport})
        tokens = {}
        for user in ("operator", "unit_water"):
            answer = await login.asyncio(
                client=anonymous, body=models.LoginRequest(username=user, password="demo12345")
            )
            tokens[user] = answer.access_token
        operator, unit = signed_in(tokens["operator"]), signed_in(tokens["unit_water"])

        registered = await register.asyncio_detailed(
            client=operator,
            body=models.IntakeTicketCreate.from_dict(
                {
                    "channel": "phone",
                    "type": "help",
                    "matter_code": "WATER-001",
                    "district": "120103",
                    "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
                    "requester": {"name": "刘芳", "phone": "13920001234"},
                }
            ),
        )
        assert registered.status_code == 201, registered.content
        ticket_id = registered.parsed.ticket_id
        await settle(app)  # the catalog dispatches 停水 to the water company on its own
        assignment = await get_assignment.asyncio(client=operator, ticket_id=ticket_id)
        assert (assignment.state, assignment.unit_id) == ("dispatched", "city-water")

        accepted = await accept.asyncio_detailed(client=unit, ticket_id=ticket_id)
        assert accepted.status_code == 200, accepted.content
        reply = models.DispatchReplyCreate.from_dict(
            {
                "policy_basis": "《天津市城市供水用水条例》",
                "progress": "已派维修人员到场",
                "result": "管道已修复，恢复供水",
                "contacted_at": accepted.parsed.accepted_at.isoformat(),
                "process": "现场排查后更换破损阀门",
                "feedback": "市民表示认可",
            }
        )
        done = await complete.asyncio_detailed(client=unit, ticket_id=ticket_id, body=reply)
        assert done.status_code == 200, done.content
        await settle(app)
        ticket = await get_ticket.asyncio(client=operator, ticket_id=ticket_id)
        assert ticket.status == "completed"

        # a refusal arrives as the documented problem, at the gateway's path
        again = await accept.asyncio_detailed(client=unit, ticket_id=ticket_id)
        assert again.status_code == 409
        assert isinstance(again.parsed, models.Problem)
        assert again.parsed.instance == f"/api/v1/dispatch/tickets/{ticket_id}/accept"
