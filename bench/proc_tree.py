"""CPU of a server's process tree over a window, from /proc: the server process, every
child alive at either end, and every child that started and exited in between.

PostgreSQL runs one process per connection, and a pool's overflow connections are closed
while the load runs: summing the backends alive at the end forgets every one that exited.
The exact figure for the whole tree comes from the kernel's bookkeeping: a child that
exits and is waited for adds its time to its parent's ``cutime``/``cstime``. Which process
spent what (a database's backends, the WAL writer...) needs samples: each child's latest
sampled value, so one that exits loses only what it spent after its last sample."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """One process's line of /proc/<pid>/stat, in seconds."""

    pid: int
    ppid: int
    started: int  # clock ticks after boot: a pid the kernel reuses is another process
    own: float  # utime + stime
    waited_children: float  # cutime + cstime: children that exited and were waited for

    @property
    def total(self) -> float:
        return self.own + self.waited_children


def read_stat(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    """The process's stat, or None when it is gone (or not a process)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # the command name in parentheses may hold spaces and parentheses: split after the last
    fields = text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        started=int(fields[19]),
        own=(utime + stime) / CLOCK_TICKS,
        waited_children=(cutime + cstime) / CLOCK_TICKS,
    )


def command_line(pid: int, proc: Path = Path("/proc")) -> str:
    """The process's title (PostgreSQL: ``postgres: <user> <database> <client> <state>``)."""
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


Key = tuple[int, int]  # (pid, started)


@dataclass
class Snapshot:
    parent: ProcStat
    children: dict[Key, ProcStat]

    @property
    def tree_total(self) -> float:
        """Everything the tree has spent so far: the parent, its waited-for children, and
        the live children (with their own waited-for children)."""
        return self.parent.total + sum(c.total for c in self.children.values())


def snapshot(parent: int, proc: Path = Path("/proc"), attempts: int = 5) -> Snapshot:
    """The parent and its live children, consistent: a child that exits between the scan of
    the children and the read of the parent would be counted twice (live, and in the
    parent's waited-for time) or not at all, so the scan is repeated while the parent's
    waited-for time moves under it."""
    for attempt in range(attempts):
        before = _parent(parent, proc)
        children: dict[Key, ProcStat] = {}
        for pid in child_pids(parent, proc):
            stat = read_stat(pid, proc)
            if stat is not None and stat.ppid == parent:
                children[(stat.pid, stat.started)] = stat
        after = _parent(parent, proc)
        if after.waited_children == before.waited_children or attempt == attempts - 1:
            return Snapshot(after, children)
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def child_pids(parent: int, proc: Path = Path("/proc")) -> list[int]:
    """The kernel's list of the process's children when it keeps one (a cheap read; a child
    being born or exiting meanwhile may be missing), else every process, to be filtered."""
    try:
        return [
            int(p)
            for p in (proc / str(parent) / "task" / str(parent) / "children").read_text().split()
        ]
    except FileNotFoundError:
        return [int(e.name) for e in proc.iterdir() if e.name.isdigit()]


def _parent(pid: int, proc: Path) -> ProcStat:
    stat = read_stat(pid, proc)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat


@dataclass
class TreeCpu:
    """CPU seconds of ``parent`` and its children from ``start()`` to the latest
    ``sample()``; call ``sample()`` often (every ~0.5 s) while the window runs."""

    parent: int
    proc: Path = Path("/proc")
    first: Snapshot | None = None
    last: Snapshot | None = None
    # each child's value at the start (0 for one born later) and its latest sample
    baseline: dict[Key, float] = field(default_factory=dict)
    latest: dict[Key, float] = field(default_factory=dict)
    titles: dict[Key, str] = field(default_factory=dict)

    def start(self) -> None:
        self.first = self.last = snapshot(self.parent, self.proc)
        self.baseline = {key: stat.total for key, stat in self.first.children.items()}
        self.latest = dict(self.baseline)
        self.titles = {key: command_line(key[0], self.proc) for key in self.first.children}

    def sample(self) -> None:
        self.last = snapshot(self.parent, self.proc)
        for key, stat in self.last.children.items():
            self.latest[key] = stat.total
            # a new backend carries the server's title until it has read its startup packet
            self.titles[key] = command_line(key[0], self.proc) or self.titles.get(key, "")

    def total(self) -> float:
        """The whole tree's CPU in the window, exact whatever exited in between."""
        if self.first is None or self.last is None:
            raise RuntimeError("start() and sample() first")
        return self.last.tree_total - self.first.tree_total

    def by_child(self) -> dict[Key, float]:
        """Each child's CPU in the window as last sampled (one that exited keeps its last
        sample; one that lived less than a sampling interval may be missing)."""
        return {key: value - self.baseline.get(key, 0.0) for key, value in self.latest.items()}

    def title(self, key: Key) -> str:
        return self.titles.get(key, "")
