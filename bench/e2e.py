"""End-to-end benchmark of the distributed mode (`make bench-e2e`, prints JSON; not a test).

PostgreSQL and Kafka come from scripts/ (already running ones are reused, never stopped);
a fresh database and topic prefix; the gateway and the six services each as its own
process (tests/integration/conftest.py's ``System``: the gateway reaches each service
through a Unix socket, HOTLINE_<SERVICE>_UDS, as on one machine it would); then N
tickets from C clients, with varied Chinese content over every channel, district and
dispatchable catalog matter.

Prints: how the gateway reached the services (``transport``: Unix sockets, or TCP where
BENCH_SETTINGS empties the HOTLINE_<SERVICE>_UDS settings), accepted/s at the gateway,
end-to-end/s (registered → dispatched → acceptance clock set in the SLA service), HTTP
latency p50/p99, end-to-end latency p50/p99, CPU seconds per ticket per process (from
/proc, plus this database's PostgreSQL backends and the shared Kafka broker), and counts
proving nothing lost and nothing doubled in every schema.

Knobs: BENCH_TICKETS (8000: the measured window; at ~1,200/s a 2,000-ticket window is ~2 s, and the
last tickets' way through the pipeline, ~0.2-0.4 s, weighs ~10 % in it), BENCH_CONCURRENCY (32),
BENCH_WARMUP (2000),
BENCH_DRAIN_SECONDS (180), BENCH_KEEP_DB=1 keeps the database for inspection,
BENCH_INTAKE_BATCH (64: intake's group commit size; 0 writes registrations one by one),
BENCH_SETTINGS ("HOTLINE_RELAY_GATHER_MS=20 HOTLINE_KAFKA_FETCH_WAIT_MS=50": any settings),
BENCH_SYNCHRONOUS_COMMIT (on: PostgreSQL's default, as in docker-compose's postgres:16, so a
201 means the ticket's commit is on disk; scripts/postgres.sh runs the shared development
server with it off for the tests' sake, and the bench database overrides that),
BENCH_DB_SETTINGS ("log_min_duration_statement=25 ...": PostgreSQL settings of the bench's
database, set with ALTER DATABASE before the services connect; to log or explain its slow
statements, say),
BENCH_HOOK (a command run with "start" as the measured window opens and "stop" as it closes,
"idle" and "idle_end" around the idle measurement before it,
BENCH_PIDS="process:pid ..." in its environment: perf, strace or a dump of counters, say),
BENCH_CLIENT (lean: bench/http_load.py, one keep-alive connection per client, on uvloop;
httpx: as before, ~2.6 ms of the machine's CPU per ticket taken from the system under test).
The machine is shared: other engineers' tests may run at the same time."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pg_statements  # noqa: E402
from bench.http_load import KeepAliveConnection  # noqa: E402
from bench.pg_server import ServerCpu, activity, per_ticket, pg_cpu_report  # noqa: E402
from services.intake.domain import DEFAULT_POLICY, sensitive_keywords_in  # noqa: E402
from shared.settings import SERVICES  # noqa: E402
from tests.integration.conftest import (  # noqa: E402
    PROCESSES,
    System,
    _create_database,
    _drop_system,
    _script_output,
    free_port,
)

TICKETS = int(os.environ.get("BENCH_TICKETS", "8000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
# BENCH_CLIENT=httpx loads through httpx (as before: ~2.6 ms of the 2 cores per ticket)
LEAN_CLIENT = os.environ.get("BENCH_CLIENT", "lean") != "httpx"
WARMUP = int(os.environ.get("BENCH_WARMUP", "2000"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "600"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "10"))
CATALOG = json.loads((ROOT / "services/dispatch/data/catalog.json").read_text("utf-8"))
CHANNELS = ("phone", "web", "wechat_official", "wechat_mini")
TYPES = ("complaint", "help", "report", "suggestion", "consultation")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "强", "桂英", "秀兰")
PLACES = ("小区", "路口", "公交站旁", "菜市场门口", "学校附近", "商场北侧", "3号楼", "胡同里")
WHEN = ("今天早上", "昨天晚上", "这几天", "上周开始", "最近一个月", "刚才")
# Details that make each ticket's text its own (building numbers, times, what is wrong), as
# citizens' texts are: a bench of a few templates would be served from per-text caches.
DETAILS = (
    "楼道灯坏了",
    "下水道堵塞返味",
    "电梯经常停运",
    "路面有坑洼",
    "垃圾没人清运",
    "噪音很大影响休息",
    "墙体渗水",
    "停车位被长期占用",
    "路灯不亮",
    "井盖松动",
    "供暖温度不够",
    "自来水发黄",
    "施工扬尘严重",
    "占道经营",
    "违规养犬",
    "绿化带被毁",
    "共享单车乱停",
    "小广告乱贴",
    "油烟扰民",
    "消防通道堵塞",
    "外墙瓷砖脱落",
    "树木遮挡窗户",
    "排水不畅积水",
    "燃气有异味",
    "快递堆放占道",
    "物业不作为",
    "电动车在楼道充电",
    "公交站牌损坏",
    "人行道砖块松动",
    "河道有异味",
)
ASK = ("请尽快处理", "希望有关部门核实", "麻烦派人看看", "请给个答复", "盼早日解决")
# Bench environment for every process (on top of System.env): quiet logs, pooled database.
EXTRA_ENV = {
    "HOTLINE_LOG_LEVEL": "WARNING",
    "HOTLINE_DB_POOL_SIZE": os.environ.get("BENCH_POOL_SIZE", "10"),
    "HOTLINE_INTAKE_BATCH_SIZE": os.environ.get("BENCH_INTAKE_BATCH", "64"),
}
SYNCHRONOUS_COMMIT = os.environ.get("BENCH_SYNCHRONOUS_COMMIT", "on")
# BENCH_DB_SETTINGS="name=value ...": the bench database's own PostgreSQL settings
DB_SETTINGS = [
    pair.split("=", 1) for pair in os.environ.get("BENCH_DB_SETTINGS", "").split() if "=" in pair
]
if SYNCHRONOUS_COMMIT not in {"on", "off", "local", "remote_write", "remote_apply"}:
    sys.exit(f"BENCH_SYNCHRONOUS_COMMIT={SYNCHRONOUS_COMMIT!r}: one of PostgreSQL's values")
# BENCH_SETTINGS="HOTLINE_X=1 HOTLINE_Y=2": any further settings for every process
EXTRA_ENV.update(
    pair.split("=", 1) for pair in os.environ.get("BENCH_SETTINGS", "").split() if "=" in pair
)
# Soak: BENCH_RETENTION_SECONDS sets the outbox retention (moved to the event history,
# checked every few seconds) and the sizes of each outbox are sampled during the run.
RETENTION = os.environ.get("BENCH_RETENTION_SECONDS")
if RETENTION:
    EXTRA_ENV["HOTLINE_OUTBOX_RETENTION_SECONDS"] = RETENTION
    EXTRA_ENV["HOTLINE_OUTBOX_PRUNE_SECONDS"] = str(max(1.0, float(RETENTION) / 2))
STATS_FLUSH_SECONDS = 11.0
# BENCH_STATEMENTS=N: the N statements of the load costing PostgreSQL the most time (and the
# N writing the most WAL), from pg_stat_statements reset in this database's scope at its start
STATEMENTS = int(os.environ.get("BENCH_STATEMENTS", "0"))
SCHEMAS = ("intake", "dispatch", "sla", "evaluation")


def window_hook(moment: str, pids: dict[str, int]) -> None:
    """BENCH_HOOK, if given, run with ``moment`` ("start", "stop") and the processes' ids."""
    hook = os.environ.get("BENCH_HOOK")
    if hook:
        listed = " ".join(f"{p}:{pid}" for p, pid in pids.items())
        env = {**os.environ, "BENCH_PIDS": listed}
        subprocess.run([*hook.split(), moment], env=env, check=False)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, kernel included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def calibration_ms() -> float:
    """CPU ms a fixed piece of Python work takes now (best of three): the host's speed.

    The machine is shared and its speed drifts by up to half between minutes; runs minutes
    apart are compared through this figure, not through any process of the platform."""
    item = {"content": "小区楼下烧烤摊夜间噪音扰民", "district": "浦东新区", "n": 12345, "ok": True}
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for i in range(4000):
            item["n"] = i
            json.loads(json.dumps(item, ensure_ascii=False))
            sorted(str(i * 7919) for i in range(8))
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def kafka_pid() -> int | None:
    run_dir = Path(
        os.environ.get("HOTLINE_RUN_DIR", Path.home() / ".cache" / "hotline12345" / "run")
    )
    try:
        return int((run_dir / "kafka.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ticket_bodies(n: int, seed: int = 12345) -> list[dict[str, Any]]:
    """Varied Chinese tickets over all channels and districts, from the real catalog
    (matters with a responsible unit, so each is dispatched automatically)."""
    rng = random.Random(seed)
    matters = [m for m in CATALOG["matters"] if m.get("responsible")]
    districts = CATALOG["districts"]
    details = [
        d for d in DETAILS if not sensitive_keywords_in(d, DEFAULT_POLICY["sensitive_keywords"])
    ]
    bodies = []
    for i in range(n):
        matter = matters[i % len(matters)]
        district = districts[(i // len(matters) + i) % len(districts)]
        # no sensitive words (Art 27): a flagged ticket is a different path, not this load
        keywords = [
            k
            for k in matter.get("keywords") or [matter["name"]]
            if not sensitive_keywords_in(k, DEFAULT_POLICY["sensitive_keywords"])
        ] or [matter["name"]]
        keyword = rng.choice(keywords)
        place = f"{district['name']}{district['street']}{rng.choice(PLACES)}"
        content = (
            f"{rng.choice(WHEN)}{place}{matter['name']}，"
            f"{rng.randint(1, 40)}号楼{rng.randint(1, 6)}单元{rng.choice(details)}，"
            f"{rng.randint(0, 23)}点{rng.randint(0, 59)}分左右{rng.choice(details)}，"
            f"{keyword}问题一直没有解决，影响周边居民生活，{rng.choice(ASK)}。"
        )
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        bodies.append(
            {
                "channel": CHANNELS[i % len(CHANNELS)],
                "type": TYPES[i % len(TYPES)],
                "matter_code": matter["code"],
                "district": district["code"],
                "address": place,
                "content": content,
                "requester": {"name": name, "phone": f"139{rng.randrange(10**8):08d}"},
            }
        )
    return bodies


async def scalar(pg: asyncpg.Connection, sql: str) -> int:
    return int(await pg.fetchval(sql) or 0)


async def unpublished(pg: asyncpg.Connection) -> int:
    total = 0
    for schema in ("intake", "dispatch", "sla", "evaluation"):
        total += await scalar(
            pg, f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
        )
    return total


async def table_sizes(pg: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Rows and bytes (with indexes and TOAST) of each outbox and event history."""
    sizes: dict[str, dict[str, int]] = {}
    for schema in SCHEMAS:
        for table in ("outbox", "event_history"):
            exists = await pg.fetchval("SELECT to_regclass($1)", f"{schema}.{table}")
            if exists is None:
                continue
            rows = await scalar(pg, f"SELECT count(*) FROM {schema}.{table}")
            size = await scalar(pg, f"SELECT pg_total_relation_size('{schema}.{table}')")
            sizes[f"{schema}.{table}"] = {"rows": rows, "bytes": size}
    return sizes


def complete(found: dict[str, Any]) -> bool:
    """No effect of any ticket missing in any schema (what ``counts`` found)."""
    return all(c["lost"] <= 0 for schema in found.values() for c in schema.values())


async def counts(pg: asyncpg.Connection, expected: int) -> dict[str, Any]:
    """Per schema: rows, distinct tickets, and the lost (expected − distinct) and
    duplicated (rows − distinct) figures of the effects one ticket must have once."""

    async def one(
        table: str, where: str = "TRUE", key: str = "ticket_id", per_ticket: int = 1
    ) -> dict[str, int]:
        row = await pg.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT {key}) AS d FROM {table} WHERE {where}"
        )
        assert row is not None
        n, d = int(row["n"]), int(row["d"])
        return {"rows": n, "lost": expected * per_ticket - d, "duplicated": n - d}

    def sent(schema: str) -> str:
        """The outbox and the event history its sent rows move to after the retention."""
        return (
            f"(SELECT key, payload FROM {schema}.outbox UNION ALL "
            f"SELECT key, payload FROM {schema}.event_history) AS {schema}_events"
        )

    async def outbox(schema: str, event_type: str) -> dict[str, int]:
        return await one(sent(schema), f"payload::jsonb->>'type' = '{event_type}'", "key")

    return {
        "intake": {
            "tickets": await one("intake.tickets"),
            "tickets_dispatched_status": await one("intake.tickets", "status = 'dispatched'"),
            "outbox_ticket.registered": await outbox("intake", "ticket.registered"),
        },
        "dispatch": {
            "assignments_dispatched": await one("dispatch.assignments", "state = 'dispatched'"),
            # the SLA's dispatch deadline, whichever of it and the registration came first
            "assignments_with_dispatch_deadline": await one(
                "dispatch.assignments", "dispatch_deadline IS NOT NULL"
            ),
            "outbox_ticket.dispatched": await outbox("dispatch", "ticket.dispatched"),
        },
        "sla": {
            "dispatch_clocks": await one("sla.clocks", "kind = 'dispatch'"),
            "acceptance_clocks": await one("sla.clocks", "kind = 'acceptance'"),
            "outbox_sla.deadline_set": await one(
                sent("sla"),
                "payload::jsonb->>'type' = 'sla.deadline_set'",
                "key || '|' || (payload::jsonb->'payload'->>'clock')",
                per_ticket=2,  # the dispatch and the acceptance clock
            ),
        },
        "evaluation": {
            "tickets": await one("evaluation.tickets"),
            "handlings": await one("evaluation.handlings"),
        },
    }


SPINE_SERIES = re.compile(
    r'^hotline_(consumer|relay)_(batches|events)\{(?:group|service)="(\w+)"\} (\S+)$', re.M
)


async def spine_counters(system: System) -> dict[str, dict[str, float]]:
    """Each service's batches and events so far, consumer and relay (its /metrics)."""
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=10) as scraper:
        for service in PROCESSES:
            if service == "gateway":
                continue
            text = (await scraper.get(f"http://127.0.0.1:{system.ports[service]}/metrics")).text
            for part, what, name, value in SPINE_SERIES.findall(text):
                found.setdefault(name, {})[f"{part}_{what}"] = float(value)
    return found


def per_batch(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> Any:
    """Events per batch in the measured window, consumer and relay, by service."""
    report: dict[str, dict[str, float]] = {}
    for service, now in after.items():
        then = before.get(service, {})
        for part in ("consumer", "relay"):
            batches = now.get(f"{part}_batches", 0) - then.get(f"{part}_batches", 0)
            events = now.get(f"{part}_events", 0) - then.get(f"{part}_events", 0)
            if batches:
                report.setdefault(service, {})[part] = round(events / batches, 1)
                report[service][f"{part}_batches"] = batches
    return report


def transport(env: dict[str, str]) -> str:
    """How the gateway reaches each service in a run with settings ``env``: Unix sockets
    by default (System), TCP where BENCH_SETTINGS empties a ``HOTLINE_<SERVICE>_UDS``."""
    ways = {
        ("unix" if env.get(f"HOTLINE_{service.upper()}_UDS") else "tcp") for service in SERVICES
    }
    return "clients to the gateway: TCP; the gateway to the services: " + (
        "Unix sockets" if ways == {"unix"} else "TCP" if ways == {"tcp"} else "mixed"
    )


async def main() -> None:  # noqa: PLR0915 - one linear script
    pg_url = os.environ.get("HOTLINE_PG_URL") or _script_output("postgres.sh")["HOTLINE_PG_URL"]
    kafka = os.environ.get("KAFKA_BOOTSTRAP") or _script_output("kafka.sh")["KAFKA_BOOTSTRAP"]
    system = System({"pg": pg_url, "kafka": kafka}, Path(tempfile.mkdtemp(prefix="bench-e2e-")))
    system.ports = {p: free_port() for p in PROCESSES}
    await _create_database(system)
    dsn = system.db_url.replace("postgresql+asyncpg", "postgresql")
    pg: asyncpg.Connection | None = None
    try:
        pg = await asyncpg.connect(dsn)
        await pg.execute(
            f'ALTER DATABASE "{system.database}" SET synchronous_commit = {SYNCHRONOUS_COMMIT}'
        )
        for name, value in DB_SETTINGS:
            await pg.execute(f'ALTER DATABASE "{system.database}" SET {name} = {value}')
        await pg.close()
        for process in PROCESSES:
            system.start(process, extra_env=EXTRA_ENV)
        for process in PROCESSES:
            await system.wait_ready(process, timeout=120)
        await system.login("operator")
        pg = await asyncpg.connect(dsn, server_settings={"application_name": "bench"})
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        bodies = ticket_bodies(WARMUP + TICKETS)
        async with httpx.AsyncClient(
            base_url=system.gateway,
            headers={"authorization": f"Bearer {system.tokens['operator']}"},
            timeout=60,
            limits=limits,
        ) as client:
            # warm-up: connections, caches, first compilation, and tables with a history
            # (counted, not timed)
            warm = list(reversed(bodies[:WARMUP]))

            async def warm_up() -> None:
                lean = KeepAliveConnection(
                    system.gateway, {"authorization": f"Bearer {system.tokens['operator']}"}
                )
                try:
                    while warm:
                        r = await lean.post("/api/v1/intake/tickets", warm.pop())
                        assert r.status_code == 201, r.text
                finally:
                    await lean.close()

            await asyncio.gather(*(warm_up() for _ in range(CONCURRENCY)))
            while (
                await scalar(pg, "SELECT count(*) FROM sla.clocks WHERE kind='acceptance'") < WARMUP
                or await scalar(pg, "SELECT count(*) FROM evaluation.handlings") < WARMUP
            ):
                await asyncio.sleep(0.1)
            # A running system's tables hold a history and have statistics (autovacuum
            # analyzes them every minute or so). Measured on a fresh database, the services'
            # cached plans are those of a near-empty table and scan whole tables for a
            # one-row update until autovacuum comes round: the load would measure a
            # database's first minute, not its working life.
            await pg.execute("ANALYZE")

            pids = {p: proc.pid for p, proc in system.procs.items()}
            # what each process burns while idle (polls, heartbeats), to subtract from the
            # load's CPU: on a busy shared machine a slow run would otherwise count it
            idle_from = {p: cpu_seconds(pid) for p, pid in pids.items()}
            idle_started = time.perf_counter()
            window_hook("idle", pids)
            await asyncio.sleep(IDLE_SECONDS)
            window_hook("idle_end", pids)
            idle_rate = {
                p: (cpu_seconds(pid) - idle_from[p]) / (time.perf_counter() - idle_started)
                for p, pid in pids.items()
            }
            calibration_before = calibration_ms()  # outside the measured CPU
            kpid = kafka_pid()
            # every process of the server, sampled while the load runs: a pool's overflow
            # connections close during the run, and their CPU counts too
            server = ServerCpu()
            await server.start([pg])
            admin_dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
            if STATEMENTS:
                await pg_statements.reset(admin_dsn, system.database)
            pg_before = await activity(pg)
            cpu_before = {p: cpu_seconds(pid) for p, pid in pids.items()}
            client_before, machine_before = cpu_seconds(os.getpid()), machine_busy_seconds()
            kafka_before = cpu_seconds(kpid) if kpid else 0.0
            last_clock_id = await scalar(pg, "SELECT coalesce(max(id), 0) FROM sla.clocks")
            spine_before = await spine_counters(system)
            commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            commits_before = await scalar(pg, commits)
            window_hook("start", pids)

            # the requests' bytes made before the window, as a load tool replays a file
            prepared = KeepAliveConnection(
                system.gateway, {"authorization": f"Bearer {system.tokens['operator']}"}
            )
            queue: list[Any] = [
                prepared.prepare("/api/v1/intake/tickets", body) if LEAN_CLIENT else body
                for body in reversed(bodies[WARMUP:])
            ]
            sent_at: dict[str, float] = {}
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            done_at: dict[str, float] = {}

            async def worker() -> None:
                lean = KeepAliveConnection(
                    system.gateway, {"authorization": f"Bearer {system.tokens['operator']}"}
                )
                try:
                    while queue:
                        await post(lean, queue.pop())
                finally:
                    await lean.close()

            async def post(lean: KeepAliveConnection, body: Any) -> None:
                t = time.perf_counter()
                if LEAN_CLIENT:
                    resp: Any = await lean.send(body)
                else:
                    resp = await client.post("/api/v1/intake/tickets", json=body)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 201:
                    latencies.append(time.perf_counter() - t)
                    sent_at[resp.json()["ticket_id"]] = t

            watch_pg = await asyncpg.connect(dsn, server_settings={"application_name": "bench"})
            server.own(watch_pg)

            async def watch_clocks() -> None:
                nonlocal last_clock_id
                while True:
                    rows = await watch_pg.fetch(
                        "SELECT id, ticket_id FROM sla.clocks WHERE id > $1 "
                        "AND kind = 'acceptance' ORDER BY id",
                        last_clock_id,
                    )
                    now = time.perf_counter()
                    for r in rows:
                        done_at.setdefault(r["ticket_id"], now)
                    if rows:
                        last_clock_id = rows[-1]["id"]
                    await asyncio.sleep(0.05)

            samples: list[dict[str, Any]] = []
            sample_pg = await asyncpg.connect(dsn, server_settings={"application_name": "bench"})
            server.own(sample_pg)

            async def sample_sizes() -> None:
                while True:
                    sizes = await table_sizes(sample_pg)
                    samples.append({"t": round(time.perf_counter() - start, 1), **sizes})
                    await asyncio.sleep(5.0)

            watcher = asyncio.create_task(watch_clocks())
            start = time.perf_counter()
            sampler = asyncio.create_task(sample_sizes()) if RETENTION else None
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            accept_seconds = time.perf_counter() - start
            accepted = len(latencies)
            deadline = time.perf_counter() + DRAIN_SECONDS
            while time.perf_counter() < deadline:
                if sum(1 for t in sent_at if t in done_at) >= accepted:
                    break
                await asyncio.sleep(0.1)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await watch_pg.close()
            finished = [done_at[t] for t in sent_at if t in done_at]
            e2e_seconds = (max(finished) - start) if finished else float("nan")
            # let the tail (evaluation's read models, intake's status) settle: every outbox
            # sent and every count unchanged for two seconds
            settle_deadline = time.perf_counter() + DRAIN_SECONDS
            previous: Any = None
            settled_at = time.perf_counter()
            while time.perf_counter() < settle_deadline:
                current = (await unpublished(pg), await counts(pg, WARMUP + accepted))
                if current[0] == 0 and complete(current[1]):
                    break  # every effect of every ticket is there
                if current != previous:
                    previous, settled_at = current, time.perf_counter()
                elif time.perf_counter() - settled_at >= 30.0:
                    break  # nothing moved for 30 s: report what is missing
                await asyncio.sleep(0.5)
            drain_seconds = time.perf_counter() - start
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            await sample_pg.close()
            window_hook("stop", pids)
            cpu_after = {p: cpu_seconds(pid) for p, pid in pids.items()}
            client_after, machine_after = cpu_seconds(os.getpid()), machine_busy_seconds()
            kafka_after = cpu_seconds(kpid) if kpid else 0.0
            calibration_after = calibration_ms()
            pg_found = await server.stop(system.database)
            spine_after = await spine_counters(system)
            commits_after = await scalar(pg, commits)
            # a backend's statistics reach the views within 10 s of its going idle (15+)
            await asyncio.sleep(STATS_FLUSH_SECONDS)
            pg_after = await activity(pg)
        total = WARMUP + accepted
        e2e_latencies = [done_at[t] - s for t, s in sent_at.items() if t in done_at]
        cpu = {p: round((cpu_after[p] - cpu_before[p]) / max(accepted, 1) * 1000, 2) for p in pids}
        net = {
            p: round(
                max(0.0, cpu_after[p] - cpu_before[p] - idle_rate[p] * drain_seconds)
                / max(accepted, 1)
                * 1000,
                2,
            )
            for p in pids
        }
        result = {
            "benchmark": "e2e",
            "mode": "distributed: gateway + 5 services (processes), PostgreSQL, Kafka",
            "machine": f"{os.cpu_count()} cores, shared with other engineers' work",
            "tickets": TICKETS,
            "concurrency": CONCURRENCY,
            "transport": transport(system.env("gateway") | EXTRA_ENV),
            "postgresql_synchronous_commit": SYNCHRONOUS_COMMIT,
            "http_status": statuses,
            "accepted": accepted,
            "accept_seconds": round(accept_seconds, 2),
            "accepted_per_second": round(accepted / accept_seconds, 1),
            "end_to_end": len(finished),
            "end_to_end_seconds": round(e2e_seconds, 2),
            "end_to_end_per_second": round(len(finished) / e2e_seconds, 1),
            "all_effects_settled_seconds": round(drain_seconds, 2),
            "http_latency_ms": {
                "p50": round(pct(latencies, 0.50) * 1000, 1),
                "p99": round(pct(latencies, 0.99) * 1000, 1),
            },
            "end_to_end_latency_ms": {
                "p50": round(pct(e2e_latencies, 0.50) * 1000, 1),
                "p99": round(pct(e2e_latencies, 0.99) * 1000, 1),
            },
            # CPU ms of a fixed piece of Python work just before and just after the window
            # (calibration_ms): lower is a faster host; compare runs through it
            "host_calibration_ms": {"before": calibration_before, "after": calibration_after},
            "cpu_ms_per_ticket": {
                **cpu,
                "python_total": round(sum(cpu.values()), 2),
                # this database's backends (the services' connections), exited ones too
                "postgresql_backends": (
                    round(pg_found["backends"] / max(accepted, 1) * 1000, 2) if pg_found else None
                ),
                # every process of the server but the bench's own connections: WAL writer,
                # checkpointer, autovacuum... (and other databases': the server is shared)
                "postgresql_server": (
                    round(
                        (pg_found["total"] - pg_found.get("bench", 0.0)) / max(accepted, 1) * 1000,
                        2,
                    )
                    if pg_found
                    else None
                ),
                "kafka_broker_shared": round(
                    (kafka_after - kafka_before) / max(accepted, 1) * 1000, 2
                ),
                # the load generator shares the 2 cores with the system it measures
                "load_generator": round(
                    (client_after - client_before) / max(accepted, 1) * 1000, 2
                ),
                # every process of the machine (kernel included), from /proc/stat
                "machine_total": round(
                    (machine_after - machine_before) / max(accepted, 1) * 1000, 2
                ),
                "machine_cores_busy": round((machine_after - machine_before) / drain_seconds, 2),
            },
            "postgresql_cpu_ms_per_ticket_by_process": pg_cpu_report(pg_found, accepted),
            "postgresql": per_ticket(pg_before, pg_after, accepted),
            "events_per_batch": per_batch(spine_before, spine_after),
            "postgresql_commits_per_ticket": round(
                (commits_after - commits_before) / max(accepted, 1), 2
            ),
            "outbox_retention_seconds": float(RETENTION) if RETENTION else None,
            "statements": (
                await pg_statements.ranked(admin_dsn, system.database, accepted, STATEMENTS)
                if STATEMENTS
                else None
            ),
            "table_sizes_sampled_every_5s": samples[:: max(1, len(samples) // 12)] or None,
            "table_sizes_at_end": await table_sizes(pg),
            "cpu_ms_per_ticket_net_of_idle": {**net, "python_total": round(sum(net.values()), 2)},
            "idle_cpu_percent_of_a_core": {p: round(r * 100, 1) for p, r in idle_rate.items()},
            "counts_expected": total,
            "counts": await counts(pg, total),
        }
        print(json.dumps(result, indent=2, ensure_ascii=False))
    finally:
        if pg is not None:
            await pg.close()
        system.stop_all()
        if not os.environ.get("BENCH_KEEP_DB"):
            await _drop_system(system)


if __name__ == "__main__":
    # the load generator runs on uvloop, as the processes it measures do: on asyncio's own
    # loop its lean client spent ~25 us more of the measured machine's CPU a request
    uvloop.run(main())
