"""The fault test's own PostgreSQL and Kafka: private instances on other ports and another
run directory, so stopping and restarting them never touches the shared ones."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.integration.conftest import (
    PROCESSES,
    ROOT,
    System,
    _create_database,
    _drop_database,
    free_port,
)


def private_ports() -> dict[str, str]:
    """Ports of the private instances: free ones unless named (HOTLINE_FAULT_*_PORT)."""
    return {
        "HOTLINE_PG_PORT": os.environ.get("HOTLINE_FAULT_PG_PORT") or str(free_port()),
        "HOTLINE_PG_FSYNC": "off",
        "HOTLINE_KAFKA_PORT": os.environ.get("HOTLINE_FAULT_KAFKA_PORT") or str(free_port()),
        "HOTLINE_KAFKA_CONTROLLER_PORT": (
            os.environ.get("HOTLINE_FAULT_KAFKA_CONTROLLER_PORT") or str(free_port())
        ),
    }


class Infra:
    """The private PostgreSQL and Kafka, through the project's own scripts."""

    def __init__(self, run_dir: Path) -> None:
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("HOTLINE_PG_URL", "HOTLINE_KAFKA_BOOTSTRAP", "HOTLINE_PG_DATA")
        }
        self.env.update(private_ports(), HOTLINE_RUN_DIR=str(run_dir))
        self.urls: dict[str, str] = {}

    def run(self, script: str, action: str) -> str:
        done = subprocess.run(
            [str(ROOT / "scripts" / script), action],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return done.stdout

    def start(self, script: str) -> None:
        out = self.run(script, "start")
        self.urls.update(line.split("=", 1) for line in out.split() if "=" in line)

    def stop(self, script: str) -> None:
        self.run(script, "stop")

    def pid(self, name: str) -> int:
        """The pid of the private Kafka (``kafka``) as its script recorded it."""
        return int((Path(self.env["HOTLINE_RUN_DIR"]) / f"{name}.pid").read_text().split()[0])


@pytest.fixture(scope="session")
def private_infra() -> Iterator[Infra]:
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-fault-"))
    infra = Infra(run_dir)
    try:
        infra.start("postgres.sh")
        infra.start("kafka.sh")
        yield infra
    finally:
        for script in ("kafka.sh", "postgres.sh"):
            try:
                infra.stop(script)
            except subprocess.SubprocessError:
                pass


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(
    private_infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    infra = {
        "pg": private_infra.urls["HOTLINE_PG_URL"],
        "kafka": private_infra.urls["KAFKA_BOOTSTRAP"],
    }
    system = System(infra, tmp_path_factory.mktemp("fault"))
    system.ports = {p: free_port() for p in PROCESSES}
    await _create_database(system)
    try:
        for process in PROCESSES:
            system.start(process)
        for process in PROCESSES:
            await system.wait_ready(process)
        await system.login("operator")
        yield system
    finally:
        system.stop_all()
        await _drop_database(system)
