"""Faults under load, on private PostgreSQL and Kafka instances: intake, dispatch and sla
SIGKILLed in turn and restarted, Kafka stopped for 20 s, PostgreSQL restarted, a second
dispatch and sla joining mid-load and then SIGKILLed.

The load runs all along at a bounded rate (HOTLINE_FAULT_RATE tickets/s) and until both the
faults are over and HOTLINE_FAULT_TICKETS are registered; the faults follow one another as
soon as the previous one has drained, so they overlap the load instead of waiting in turn.
Clients retry a failed registration with the same Idempotency-Key, as an integrator would,
and hold back while more than HOTLINE_FAULT_BACKLOG tickets are registered but not yet
through the spine (so a slow machine is not buried under a backlog it cannot drain).

After each fault, every ticket intake had committed when the fault ended is through every
schema within a minute; at the end every schema holds each ticket's effects exactly once,
and no ticket was filed twice. Prints the figures (JSON) for the closing note."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fault.conftest import Infra
from tests.integration.conftest import System
from tests.integration.test_spine import ticket

pytestmark = pytest.mark.asyncio(loop_scope="module")

TICKETS = int(os.environ.get("HOTLINE_FAULT_TICKETS", "5000"))
# tickets/s offered: below what the pipeline sustains on the 2-core CI machine, so a fault's
# backlog drains while the load goes on
RATE = float(os.environ.get("HOTLINE_FAULT_RATE", "30"))
BACKLOG = int(os.environ.get("HOTLINE_FAULT_BACKLOG", "150"))
DRAIN_WITHIN = 60.0


def dsn(system: System) -> str:
    return system.db_url.replace("postgresql+asyncpg", "postgresql")


def sent(schema: str, event_type: str) -> str:
    """A schema's events of one type: the outbox and the history sent rows move to."""
    return (
        f"(SELECT key, payload FROM {schema}.outbox UNION ALL"
        f" SELECT key, payload FROM {schema}.event_history) AS e"
        f" WHERE payload::json->>'type' = '{event_type}'"
    )


# What one ticket leaves in each schema, exactly once: (name, the query's FROM/WHERE, key).
EFFECTS = {
    "intake_dispatched": ("intake.tickets WHERE status = 'dispatched'", "ticket_id"),
    "dispatch_assignments": ("dispatch.assignments WHERE state = 'dispatched'", "ticket_id"),
    "dispatch_events": (sent("dispatch", "ticket.dispatched"), "key"),
    "sla_acceptance_clocks": ("sla.clocks WHERE kind = 'acceptance'", "ticket_id"),
    "sla_deadline_events": (
        sent("sla", "sla.deadline_set") + " AND payload::json->'payload'->>'clock' = 'acceptance'",
        "key",
    ),
    "evaluation_tickets": ("evaluation.tickets", "ticket_id"),
    "evaluation_handlings": ("evaluation.handlings", "ticket_id"),
}
SCHEMAS = ("intake", "dispatch", "sla", "knowledge", "evaluation", "channels")


# the effects read without parsing events (cheap enough to poll while draining)
STATE = {name: effect for name, effect in EFFECTS.items() if not name.endswith("_events")}


async def tally(
    system: System, ids: list[str] | None = None, effects: dict[str, tuple[str, str]] = EFFECTS
) -> dict[str, Any]:
    """Per effect: how many of ``ids`` (all tickets when None) have it, and how many
    tickets have it more than once; and the dead letters of every schema."""
    conn = await asyncpg.connect(dsn(system))
    try:
        if ids is None:
            ids = [r[0] for r in await conn.fetch("SELECT ticket_id FROM intake.tickets")]
        found: dict[str, Any] = {}
        for name, (source, key) in effects.items():
            row = await conn.fetchrow(
                f"SELECT count(DISTINCT {key}) AS have, count(*) - count(DISTINCT {key}) AS twice"
                f" FROM (SELECT * FROM {source}) AS x WHERE {key} = ANY($1)",  # noqa: S608
                ids,
            )
            assert row is not None
            found[name] = {"have": row["have"], "twice": row["twice"]}
        found["dead_letters"] = sum(
            [await conn.fetchval(f"SELECT count(*) FROM {s}.dead_letters") for s in SCHEMAS]
        )
        return found
    finally:
        await conn.close()


def whole(n: int, effects: dict[str, tuple[str, str]] = EFFECTS) -> dict[str, Any]:
    return {**{name: {"have": n, "twice": 0} for name in effects}, "dead_letters": 0}


async def committed(system: System) -> list[str]:
    """Every ticket intake has stored, whatever its clients were told."""
    conn = await asyncpg.connect(dsn(system))
    try:
        return [r[0] for r in await conn.fetch("SELECT ticket_id FROM intake.tickets")]
    finally:
        await conn.close()


THROUGH = (
    "SELECT least("
    "(SELECT count(*) FROM intake.tickets WHERE status = 'dispatched'),"
    "(SELECT count(*) FROM sla.clocks WHERE kind = 'acceptance'),"
    "(SELECT count(*) FROM evaluation.handlings))"
)


class Load:
    """Clients registering tickets through the gateway at ``rate`` (together), each ticket
    with its own Idempotency-Key, retried with the same key until it is accepted; holding
    back while more than ``backlog`` tickets are registered but not through the spine."""

    def __init__(self, system: System, rate: float, backlog: int, clients: int = 6) -> None:
        self.system, self.backlog, self.clients = system, backlog, clients
        self.interval = clients / rate  # each client's pace, so all together make ``rate``
        self.accepted: set[str] = set()
        self.failures: dict[str, int] = {}  # retried: by status or error
        self.held_back_seconds = 0.0
        self.through = 0
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]
        self._tasks.append(asyncio.create_task(self._watch()))

    async def _watch(self) -> None:
        """How many tickets are through the spine: the fewest of the effects that come last
        in each consumer (so no consumer's backlog grows beyond the bound)."""
        while not self.stop.is_set():
            try:
                conn = await asyncpg.connect(dsn(self.system))
                try:
                    while not self.stop.is_set():
                        self.through = await conn.fetchval(THROUGH)
                        await asyncio.sleep(0.5)
                finally:
                    await conn.close()
            except Exception:  # noqa: BLE001 - PostgreSQL is being restarted
                await asyncio.sleep(0.5)

    async def _client(self) -> None:
        async with self.system.client("operator") as client:
            while not self.stop.is_set():
                if len(self.accepted) - self.through > self.backlog:
                    await asyncio.sleep(0.2)
                    self.held_back_seconds += 0.2 / self.clients
                    continue
                began = time.monotonic()
                await self._register(client, ticket(), str(uuid.uuid4()))
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def _register(self, client: httpx.AsyncClient, body: dict[str, Any], key: str) -> None:
        """Until accepted; a registration in doubt when the load stops is retried once the
        system is back (the last attempts of a test), so none is left unknown."""
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            if self.stop.is_set() and deadline is None:
                deadline = time.monotonic() + DRAIN_WITHIN
            try:
                r = await client.post(
                    "/api/v1/intake/tickets", json=body, headers={"Idempotency-Key": key}
                )
                if r.status_code in (200, 201):
                    self.accepted.add(r.json()["ticket_id"])
                    return
                failure = str(r.status_code)
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            self.failures[failure] = self.failures.get(failure, 0) + 1
            await asyncio.sleep(0.2)

    async def reach(self, n: int) -> None:
        """Until ``n`` tickets are accepted; a load that makes no progress for a minute,
        or a client that died, fails the test."""
        last = (time.monotonic(), len(self.accepted))
        while len(self.accepted) < n:
            self.check()
            if len(self.accepted) > last[1]:
                last = (time.monotonic(), len(self.accepted))
            assert time.monotonic() - last[0] < DRAIN_WITHIN, f"load stuck at {last[1]} of {n}"
            await asyncio.sleep(0.2)

    def check(self) -> None:
        """A client or the watcher that died is a failure of the test, not a slow load."""
        for task in self._tasks:
            if task.done() and task.exception() is not None:
                raise AssertionError("a load task died") from task.exception()

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self._tasks)


def progress(what: str, **figures: Any) -> None:
    """One line per step on stderr (``make test-fault`` shows it; the log says where a
    slow or failed run was)."""
    print(time.strftime("%H:%M:%S"), what, json.dumps(figures), file=sys.stderr, flush=True)  # noqa: T201


async def drained_within(system: System, within: float) -> float:
    """Seconds until what intake had committed when the fault ended is through every
    schema (the load goes on meanwhile); the database may be briefly unreachable."""
    start = time.monotonic()
    last: object = None
    ids: list[str] | None = None
    while time.monotonic() - start < within:
        try:
            if ids is None:
                ids = await committed(system)
            last = await tally(system, ids, STATE)
            if last == whole(len(ids), STATE):
                last = await tally(system, ids)
                if last == whole(len(ids)):
                    return round(time.monotonic() - start, 1)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            last = exc
        await asyncio.sleep(0.5)
    raise AssertionError(f"not drained within {within} s: {last}\n{system.logs()}")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(system: System, process: str) -> float:
    return cpu_of(system.procs[process].pid)


def python_cpu_seconds(system: System) -> float:
    """The test's own CPU and its processes' (the killed ones were waited for, so their
    time is in the children's usage; the running ones are read live)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    gone = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = own.ru_utime + own.ru_stime + gone.ru_utime + gone.ru_stime
    return used + sum(cpu_of(p.pid) for p in system.procs.values())


async def assigned_partitions(system: System, name: str, timeout: float = 90) -> None:
    """Until ``name``'s consumer has been given partitions of its group (it shares the work)."""
    log = system.workdir / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if re.search(r'"msg":"partitions assigned".*"partitions":[1-9]', text):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} was never assigned partitions\n{system.logs()}")


async def test_nothing_is_lost_or_doubled_through_crashes_outages_and_rebalances(
    system: System, private_infra: Infra
) -> None:
    began = time.monotonic()
    report: dict[str, Any] = {"faults": {}}

    async def restart(process: str) -> None:
        system.kill(process)
        system.start(process)
        await system.wait_ready(process)

    async def kafka_down() -> None:
        await asyncio.to_thread(private_infra.stop, "kafka.sh")
        idle = ("dispatch", "sla", "knowledge", "evaluation")  # no events reach them
        before = {p: cpu_seconds(system, p) for p in idle}
        await asyncio.sleep(20)  # the outage itself, not a wait for a result
        report["cpu % of a core while kafka is down"] = {
            p: round((cpu_seconds(system, p) - before[p]) / 20 * 100, 1) for p in idle
        }
        await asyncio.to_thread(private_infra.start, "kafka.sh")

    async def postgres_restart() -> None:
        await asyncio.to_thread(private_infra.stop, "postgres.sh")
        await asyncio.to_thread(private_infra.start, "postgres.sh")

    async def join_then_crash() -> None:
        system.start("dispatch", name="dispatch-2")
        system.start("sla", name="sla-2")
        await system.wait_ready("dispatch-2")
        await system.wait_ready("sla-2")
        await assigned_partitions(system, "dispatch-2")  # under load, the partitions shared
        await assigned_partitions(system, "sla-2")
        system.kill("dispatch-2")
        system.kill("sla-2")

    faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("intake SIGKILL", lambda: restart("intake")),
        ("dispatch SIGKILL", lambda: restart("dispatch")),
        ("sla SIGKILL", lambda: restart("sla")),
        ("kafka stopped 20 s", kafka_down),
        ("postgresql restarted", postgres_restart),
        ("second dispatch+sla join, then SIGKILL", join_then_crash),
    ]
    load = Load(system, RATE, BACKLOG)
    load.start()
    step = TICKETS // (len(faults) + 1)  # the faults spread over the load
    try:
        for n, (name, fault) in enumerate(faults, start=1):
            await load.reach(n * step)
            progress(name, accepted=len(load.accepted), through=load.through)
            started = time.monotonic()
            await fault()
            report["faults"][name] = {
                "at_ticket": len(load.accepted),
                "fault_seconds": round(time.monotonic() - started, 1),
                "drained_seconds": await drained_within(system, DRAIN_WITHIN),
            }
            progress(name, **report["faults"][name])
            load.check()
        await load.reach(TICKETS)  # the rest of the load, faults over
    finally:
        await load.finish()
    progress("load done", accepted=len(load.accepted), through=load.through)
    report["final_drained_seconds"] = await drained_within(system, DRAIN_WITHIN)
    ids = await committed(system)
    conn = await asyncpg.connect(dsn(system))
    try:
        keys = await conn.fetchval("SELECT count(*) FROM intake.idempotency_keys")
    finally:
        await conn.close()
    found = await tally(system, ids)
    report.update(
        tickets=len(ids),
        accepted_by_clients=len(load.accepted),
        idempotency_keys=keys,
        client_failures_retried=load.failures,
        clients_held_back_seconds=round(load.held_back_seconds, 1),
        effects=found,
        test_seconds=round(time.monotonic() - began, 1),
        # the CPU it took (the machine may be shared): this process and the services
        python_cpu_seconds=round(python_cpu_seconds(system), 1),
        kafka_cpu_seconds_since_its_restart=round(cpu_of(private_infra.pid("kafka")), 1),
        load_average=os.getloadavg(),
    )
    print(json.dumps(report, ensure_ascii=False))  # noqa: T201 - the closing note's figures

    assert len(ids) >= TICKETS
    # no ticket filed twice: one per Idempotency-Key, and each one a client was told about
    assert len(ids) == keys
    assert load.accepted == set(ids)
    assert found == whole(len(ids))
    assert max(report["cpu % of a core while kafka is down"].values()) < 25
