"""The gateway reaching a service through a Unix socket (``HOTLINE_<SERVICE>_UDS``): the
service serves there besides its port, the gateway's transport connects there, and a bad
setting is refused at start with what to set."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError

from gateway.app import create_gateway_app
from gateway.transport import HTTP1Transport
from services.intake.app import SPEC as INTAKE
from shared.bus import LogBus
from shared.http_server import Server, server_options
from shared.service import create_service_app
from shared.settings import Settings
from tests.unit.gateway.conftest import PASSWORDS
from tests.unit.intake.conftest import MATTERS, T0, ticket

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def nobody_listens() -> str:
    """A URL on a port no process listens on: a request that goes there is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@asynccontextmanager
async def serving(app: Any, unix_socket: str, **options: Any) -> AsyncIterator[Server]:
    """``app`` served as a service process serves it (``shared.http_server.serve``), on a
    port of its own and on ``unix_socket``, in the test's event loop."""
    server = Server(
        uvicorn.Config(app, **server_options(host="127.0.0.1", port=0, **options)),
        unix_socket=unix_socket,
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_a_registration_reaches_intake_through_its_unix_socket(
    settings: Settings, tmp_path: Path
) -> None:
    """Intake as its process runs it, listening on a socket; the gateway configured with
    that socket and a URL on which nobody listens: only the socket can carry the
    registration and the read that follows."""
    path = str(tmp_path / "intake.sock")
    settings = settings.model_copy(update={"intake_url": nobody_listens(), "intake_uds": path})
    bus = LogBus()
    await bus.start()
    intake = create_service_app(INTAKE, settings, bus=bus)
    gateway = create_gateway_app(settings)
    try:
        async with (
            serving(intake, path, lifespan="on"),
            gateway.router.lifespan_context(gateway),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
            ) as client,
        ):
            await bus.publish([m.envelope(producer="knowledge", occurred_at=T0) for m in MATTERS])
            await bus.settle()  # intake knows the catalog
            login = await client.post(
                "/api/v1/auth/login", json={"username": "op1", "password": PASSWORDS["op1"]}
            )
            operator = {"authorization": f"Bearer {login.json()['access_token']}"}
            registered = await client.post(
                "/api/v1/intake/tickets", json=ticket(), headers=operator
            )
            assert registered.status_code == 201, registered.text
            ticket_id = registered.json()["ticket_id"]
            read = await client.get(f"/api/v1/intake/tickets/{ticket_id}", headers=operator)
            ready = await client.get("/readyz")
    finally:
        await bus.stop()

    assert read.status_code == 200, read.text
    assert read.json()["ticket_id"] == ticket_id
    assert ready.json()["services"]["intake"]["http_status"] == 200  # health checks too


async def test_the_transport_keeps_its_connection_to_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
            except asyncio.IncompleteReadError:
                break
            writer.write(OK)
        writer.close()

    server = await asyncio.start_unix_server(answer, path)
    try:
        async with httpx.AsyncClient(
            base_url="http://intake:8001", transport=HTTP1Transport(uds=path)
        ) as client:
            answers = [(await client.get(f"/x/{n}")).text for n in range(2)]
    finally:
        server.close()

    assert answers == ["ok", "ok"]
    assert [h.split(b"\r\n")[:2] for h in heads] == [
        [b"GET /x/0 HTTP/1.1", b"Host: intake:8001"],  # the URL still names the Host
        [b"GET /x/1 HTTP/1.1", b"Host: intake:8001"],
    ]


async def test_a_unix_socket_nobody_serves_is_a_connect_error_naming_it(tmp_path: Path) -> None:
    """As a refused port: the gateway answers 503, the request was not sent."""
    path = str(tmp_path / "gone.sock")
    async with httpx.AsyncClient(
        base_url="http://intake", transport=HTTP1Transport(uds=path)
    ) as client:
        with pytest.raises(httpx.ConnectError, match="gone.sock"):
            await client.get("/x")


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("var/intake.sock", "give an absolute path"),
        ("/run/" + "h" * 120 + "/intake.sock", "137 bytes, longer than a Unix socket's path"),
    ],
)
def test_a_socket_path_no_process_could_use_is_refused_naming_the_setting(
    path: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(intake_uds=path)

    (error,) = refused.value.errors()
    assert error["msg"].startswith(f"Value error, HOTLINE_INTAKE_UDS={path}: {says}")


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def get(path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url="http://service", transport=httpx.AsyncHTTPTransport(uds=path)
    ) as client:
        return await client.get("/")


async def test_a_service_refuses_a_unix_socket_another_process_serves(tmp_path: Path) -> None:
    """Binding a TCP port in use fails; a socket's file would be replaced and the first
    server cut off from the gateway without a word. So the second one does not start."""
    path = str(tmp_path / "intake.sock")
    second = Server(
        uvicorn.Config(hello, **server_options(host="127.0.0.1", port=0, lifespan="off")),
        unix_socket=path,
    )
    outcome: list[object] = []

    def run_second() -> None:  # as a process of its own would: its loop, its exit
        try:
            asyncio.run(second.serve())
            outcome.append("stopped")
        except SystemExit as exc:
            outcome.append(exc.code)

    async with serving(hello, path, lifespan="off"):
        thread = threading.Thread(target=run_second)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        if thread.is_alive():  # it serves: stop it, so that the test fails rather than hangs
            second.should_exit = True
            await asyncio.to_thread(thread.join, 10)
        still = await get(path)

    assert (outcome, second.started, still.text) == ([3], False, "hello")


async def test_a_service_replaces_the_socket_file_a_stopped_one_left_and_removes_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intake.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # a process killed without its clean-up: the file, nobody serving
    left.close()

    async with serving(hello, str(path), lifespan="off"):
        answer = await get(str(path))

    assert answer.text == "hello"
    assert not path.exists()


async def test_only_the_services_user_and_group_may_connect_to_its_socket(tmp_path: Path) -> None:
    """Whatever the process's umask (0 here: a file open to every user), the socket file is
    0660 and a directory made for it 0750: nobody else on the machine reaches the service
    past the gateway."""
    path = tmp_path / "run" / "intake.sock"
    umask = os.umask(0)
    try:
        async with serving(hello, str(path), lifespan="off"):
            modes = (stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode))
            answer = await get(str(path))
    finally:
        os.umask(umask)

    assert (modes, answer.text) == ((0o660, 0o750), "hello")
