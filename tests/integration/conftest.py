"""The distributed system, for real: PostgreSQL and Kafka started by the project's own
scripts (or named by HOTLINE_TEST_PG_URL / HOTLINE_TEST_KAFKA), and every service and the
gateway as its own process. Each test module gets its own database and topic prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsRequest_v2

from shared.events import Envelope
from shared.settings import SERVICES
from tests.integration.joining import JOIN_TIMEOUT
from tests.integration.topics import drop_topics
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = (*SERVICES, "gateway")
PASSWORD = "demo12345"


def _script_output(script: str) -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "scripts" / script), "start"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


@pytest.fixture(scope="session")
def infra() -> dict[str, str]:
    """Addresses of the real PostgreSQL and Kafka."""
    pg = os.environ.get("HOTLINE_TEST_PG_URL") or _script_output("postgres.sh")["HOTLINE_PG_URL"]
    kafka = os.environ.get("HOTLINE_TEST_KAFKA") or _script_output("kafka.sh")["KAFKA_BOOTSTRAP"]
    return {"pg": pg, "kafka": kafka}


@dataclass
class System:
    """The platform as an integrator sees it, plus the levers a test needs: restart a
    process, read the bus, move a service's clock.

    All on one machine, so the gateway reaches each service through a Unix socket in
    ``workdir`` (``HOTLINE_<SERVICE>_UDS``), as a deployment on one machine would; anything
    else (readiness, metrics, channels' calls to intake) through the service's port."""

    infra: dict[str, str]
    workdir: Path
    database: str = field(default_factory=lambda: f"hotline_t{uuid.uuid4().hex[:10]}")
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    # further settings for every process this system starts
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        base, _, _ = self.infra["pg"].rpartition("/")
        return f"{base}/{self.database}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def env(self, process: str, name: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(
            PYTHONPATH=str(ROOT),
            HOTLINE_ENV="test",
            HOTLINE_DB_URL=self.db_url,
            HOTLINE_DB_POOL_SIZE="4",
            HOTLINE_BUS_URL=f"kafka://{self.infra['kafka']}",
            HOTLINE_TOPIC_PREFIX=self.prefix,
            HOTLINE_CLOCK="controllable",
            HOTLINE_PORT=str(self.ports[name or process]),
            HOTLINE_RELAY_POLL_SECONDS="0.2",
            HOTLINE_LOG_LEVEL="INFO",
        )
        for service in SERVICES:
            env[f"HOTLINE_{service.upper()}_URL"] = f"http://127.0.0.1:{self.ports[service]}"
            env[f"HOTLINE_{service.upper()}_UDS"] = self.unix_socket(service)
        if process in SERVICES and name not in (None, process):
            # a further instance: a socket of its own (the gateway keeps to the first one's)
            env[f"HOTLINE_{process.upper()}_UDS"] = self.unix_socket(name)
        env.update(self.settings)
        return env

    def unix_socket(self, name: str) -> str:
        return str(self.workdir / f"{name}.sock")

    def start(
        self, process: str, *, name: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        """Start ``process``; ``name`` runs a further instance of it (its own port)."""
        name = name or process
        self.ports.setdefault(name, free_port())
        module = "gateway" if process == "gateway" else f"services.{process}"
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**self.env(process, name), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, process: str) -> None:
        """SIGKILL: no shutdown hooks, no flush — a crash."""
        proc = self.procs.pop(process)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def terminate(self, process: str) -> subprocess.Popen[bytes]:
        """SIGTERM, without waiting: a clean stop (the process finishes what it has in
        hand, commits, leaves its consumer groups and exits)."""
        proc = self.procs.pop(process)
        proc.terminate()
        return proc

    def stop(self, process: str) -> None:
        """SIGTERM, and wait until the process has exited."""
        self.terminate(process).wait(15)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p} ---\n" + (self.workdir / f"{p}.log").read_text(errors="replace")[-4000:]
            for p in PROCESSES
            if (self.workdir / f"{p}.log").exists()
        )

    async def wait_ready(self, process: str, timeout: float = 180) -> None:
        url = f"http://127.0.0.1:{self.ports[process]}/readyz"
        deadline = time.monotonic() + timeout
        last: Any = None
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                proc = self.procs.get(process)
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"{process} exited ({proc.returncode})\n{self.logs()}")
                try:
                    last = await client.get(url)
                    if last.status_code == 200:
                        return
                except httpx.HTTPError as exc:
                    last = exc
                await asyncio.sleep(0.2)
        raise AssertionError(f"{process} not ready: {last!r}\n{self.logs()}")

    def client(self, role_user: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {self.tokens[role_user]}"} if role_user else {}
        return httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=10)

    async def login(self, *usernames: str) -> None:
        async with httpx.AsyncClient(base_url=self.gateway, timeout=10) as client:
            for username in usernames:
                r = await client.post(
                    "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
                )
                assert r.status_code == 200, r.text
                self.tokens[username] = r.json()["access_token"]

    async def events(self, topic: str) -> list[Envelope]:
        """Everything on ``topic`` so far, read from the beginning by a fresh consumer."""
        found = await read_to_end(self.infra["kafka"], [f"{self.prefix}{topic}"])
        return [Envelope.from_json(m.value) for m in found]


async def read_to_end(kafka: str, topics: list[str], timeout: float = 60.0) -> list[Any]:
    """Every message of ``topics`` up to each partition's end at the time of the call (the
    aiokafka records, in partition order), read from the beginning by a fresh consumer.

    Bounded by the ends, not by a reading time: on a loaded 2-core machine a fresh
    consumer's first fetches can take seconds, and a read that stopped after a fixed time
    returned part of a topic as if it were all of it (an event "missing", or "not there
    twice" because it was not read at all)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    ]
    seen: list[Any] = []
    if not partitions:
        return seen
    # from the beginning: no group, so no committed offsets, so the reset policy decides
    # (aiokafka's default, "latest", would race a seek_to_beginning and may win)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while behind := [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"{behind} not read to {ends} in {timeout} s"
            for tp, messages in (await consumer.getmany(*behind, timeout_ms=500)).items():
                seen.extend(m for m in messages if m.offset < ends[tp])
    finally:
        await consumer.stop()
    return seen


async def _create_database(system: System) -> None:
    admin_url = system.infra["pg"].replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{system.database}"')
    finally:
        await conn.close()


async def _drop_system(system: System) -> None:
    """Remove what ``system`` left on the shared PostgreSQL and Kafka: its database and its
    topics."""
    await _drop_database(system)
    await drop_topics(system.infra["kafka"], system.prefix)


async def _drop_database(system: System) -> None:
    admin_url = system.infra["pg"].replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{system.database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def pg_url(infra: dict[str, str]) -> AsyncIterator[str]:
    """A fresh database of this test's own on the shared PostgreSQL."""
    database = f"hotline_b{uuid.uuid4().hex[:10]}"
    admin = infra["pg"].replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    base, _, _ = infra["pg"].rpartition("/")
    try:
        yield f"{base}/{database}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    # Tests that wait for every group to commit its position wait up to the commit
    # interval: the product's 5 s made the suite ~70 s slower. The fault test, the bench
    # and the soak keep the product's default.
    system = System(
        infra, tmp_path_factory.mktemp("system"), settings={"HOTLINE_KAFKA_COMMIT_SECONDS": "1"}
    )
    system.ports = {p: free_port() for p in PROCESSES}
    await _create_database(system)
    try:
        for process in PROCESSES:
            system.start(process)
        for process in PROCESSES:
            await system.wait_ready(process)
        # Ready does not mean joined: a service's consumer joins its group after it
        # answers. The first join of a module's fresh groups, not the first test's
        # first wait (30 s), takes the time a join may take on a loaded machine.
        await groups_settled(system, 1, *SERVICES)
        await system.login(
            "operator", "agency", "admin", "unit_water", "unit_heping_housing", "unit_hexi_housing"
        )
        yield system
    finally:
        system.stop_all()
        await _drop_system(system)


@pytest_asyncio.fixture
async def topic_prefix(infra: dict[str, str]) -> AsyncIterator[str]:
    """A topic prefix of this test's own on the shared Kafka; its topics go afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    await drop_topics(infra["kafka"], prefix)


async def eventually(probe: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``probe`` (an async callable returning a truthy value when done), bounded."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class _DescribeGroupsV2(DescribeGroupsRequest):
    """DescribeGroups v2: aiokafka 0.14 reads the broker's v3 answer with the v2 layout
    (``AIOKafkaAdminClient.describe_consumer_groups`` fails on Kafka 4)."""

    def prepare(self, versions: Any) -> Any:
        return DescribeGroupsRequest_v2(self._groups)


async def groups_settled(system: System, members: int, *groups: str) -> None:
    """Until each consumer group is stable with ``members`` members (a rebalance is over)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.infra["kafka"])
    await admin.start()
    names = [f"{system.prefix}{g}" for g in groups]
    try:
        node = await admin.find_coordinator(names[0])  # one broker: the same for all

        seen: list[tuple[str, str, int]] = []  # each group's state and members, last asked

        async def stable() -> bool:
            response = await admin._client.send(node, _DescribeGroupsV2(names))
            seen[:] = [(g[1], g[2], len(g[5])) for g in response.groups]
            return all(state == "Stable" and n == members for _, state, n in seen)

        try:
            await eventually(stable, f"{groups} stable with {members} members", JOIN_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the groups were (name, state, members): {seen}") from None
    finally:
        await admin.close()
