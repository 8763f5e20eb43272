"""What the PostgreSQL server spends on a benchmark's window: CPU of its processes (from
/proc, when the server runs on this machine), WAL, and each table's and index's writes and
scans in the benchmark's database (from the statistics views)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.proc_tree import TreeCpu, read_stat

SAMPLE_SECONDS = 0.5


def process_kind(title: str, database: str, own_pids: set[int], pid: int) -> str:
    """What a server child is, from its title: ``backends`` (the services' connections to
    the benchmark's database), ``bench`` (the benchmark's own), ``other databases``, or the
    auxiliary process's name (walwriter, checkpointer, autovacuum worker...)."""
    if pid in own_pids:
        return "bench"
    words = title.removeprefix("postgres: ").split()
    if len(words) >= 3 and ("(" in words[2] or words[2] == "[local]"):  # user db client
        return "backends" if words[1] == database else "other databases"
    # an autovacuum worker names its database
    name = " ".join(
        "(this database)" if w == database else "(other)" if w.startswith("hotline") else w
        for w in words
    )
    return name or "unnamed"


def cpu_by_kind(tree: TreeCpu, database: str, own_pids: set[int]) -> dict[str, float]:
    """Seconds per kind of process; ``unsampled`` is what children spent that no sample saw
    (those that exited after their last sample or lived between two samples), ``server``
    the postmaster itself, ``total`` the exact sum over the tree."""
    found: dict[str, float] = {}
    for key, seconds in tree.by_child().items():
        kind = process_kind(tree.title(key), database, own_pids, key[0])
        found[kind] = found.get(kind, 0.0) + seconds
    assert tree.first is not None and tree.last is not None
    postmaster = tree.last.parent.own - tree.first.parent.own
    total = tree.total()
    found["postmaster"] = postmaster
    found["unsampled"] = total - postmaster - sum(v for k, v in found.items() if k != "postmaster")
    found["total"] = total
    return found


@dataclass
class ServerCpu:
    """Samples the server's process tree every half second between ``start`` and
    ``stop``; None when the server's processes are not visible here."""

    tree: TreeCpu | None = None
    task: asyncio.Task[None] | None = None
    own_pids: set[int] = field(default_factory=set)

    async def start(self, connections: list[asyncpg.Connection]) -> None:
        self.own_pids = {c.get_server_pid() for c in connections}
        backend = read_stat(next(iter(self.own_pids)))
        if backend is None:  # a server on another machine
            return
        self.tree = TreeCpu(backend.ppid)
        self.tree.start()
        self.task = asyncio.create_task(self._sample())

    def own(self, connection: asyncpg.Connection) -> None:
        """One more connection of the benchmark's own, not the system's."""
        self.own_pids.add(connection.get_server_pid())

    async def _sample(self) -> None:
        assert self.tree is not None
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.tree.sample()

    async def stop(self, database: str) -> dict[str, float] | None:
        if self.tree is None or self.task is None:
            return None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.tree.sample()
        return cpu_by_kind(self.tree, database, self.own_pids)


WAL = "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"
TABLES = (
    "SELECT schemaname || '.' || relname AS name, n_tup_ins AS ins, n_tup_upd AS upd, "
    "n_tup_hot_upd AS hot, n_tup_del AS del FROM pg_stat_user_tables"
)
INDEXES = (
    "SELECT s.schemaname || '.' || s.indexrelname AS name, s.idx_scan AS scans, "
    "io.idx_blks_hit + io.idx_blks_read AS blocks "
    "FROM pg_stat_user_indexes s JOIN pg_statio_user_indexes io USING (indexrelid)"
)


async def activity(pg: asyncpg.Connection) -> dict[str, Any]:
    """The statistics counters the report compares before and after the window."""
    # the statistics of a session are flushed to shared memory at most once a second
    await pg.execute("SELECT pg_stat_force_next_flush()")
    wal = await pg.fetchrow(WAL)
    assert wal is not None
    return {
        "wal": dict(wal),
        "tables": {r["name"]: dict(r) for r in await pg.fetch(TABLES)},
        "indexes": {r["name"]: dict(r) for r in await pg.fetch(INDEXES)},
    }


def per_ticket(before: dict[str, Any], after: dict[str, Any], tickets: int) -> dict[str, Any]:
    """WAL (the whole server's) and the database's table writes and index use per ticket;
    indexes by blocks touched (reads and the writes' descents alike), unscanned ones named."""
    n = max(tickets, 1)

    def delta(kind: str, name: str, column: str) -> int:
        return int(after[kind][name][column]) - int(before[kind].get(name, {}).get(column, 0))

    tables = {}
    for name in sorted(after["tables"]):
        row = {c: round(delta("tables", name, c) / n, 2) for c in ("ins", "upd", "hot", "del")}
        if any(row.values()):
            tables[name] = row
    indexes = {
        name: {
            "blocks": round(delta("indexes", name, "blocks") / n, 2),
            "scans": round(delta("indexes", name, "scans") / n, 2),
        }
        for name in after["indexes"]
    }
    busy = sorted((i for i in indexes.items() if i[1]["blocks"] > 0), key=lambda i: -i[1]["blocks"])
    return {
        "wal_per_ticket": {
            k: round((int(after["wal"][k]) - int(before["wal"][k])) / n, 1) for k in after["wal"]
        },
        "table_writes_per_ticket": tables,
        "index_blocks_per_ticket": dict(busy),
        "indexes_written_never_scanned": sorted(name for name, row in busy if row["scans"] == 0),
    }


def pg_cpu_report(found: dict[str, float] | None, tickets: int) -> dict[str, float] | None:
    if found is None:
        return None
    n = max(tickets, 1)
    return {k: round(v / n * 1000, 3) for k, v in sorted(found.items(), key=lambda i: -i[1])}
