"""The benchmark's CPU accounting of a server's process tree (bench/proc_tree.py): children
that exit during the window count, with the time they spent after their last sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.pg_server import cpu_by_kind, process_kind
from bench.proc_tree import CLOCK_TICKS, TreeCpu, read_stat

POSTMASTER = 100
DB = "hotline_tbench"


class FakeProc:
    """A /proc with the processes a test puts there; times in seconds. With
    ``children_file`` the postmaster's children are listed as a kernel with
    CONFIG_PROC_CHILDREN lists them; without, the reader scans every process."""

    def __init__(self, root: Path, children_file: bool) -> None:
        self.root = root
        self.children_file = children_file

    def put(
        self, pid: int, ppid: int, own: float, waited: float = 0.0, title: str = "", born: int = 7
    ) -> None:
        ticks = [round(own * CLOCK_TICKS), 0, round(waited * CLOCK_TICKS), 0]
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime priority nice threads itrealvalue starttime ...
        fields = ["S", ppid, 1, 1, 0, -1, 0, 0, 0, 0, 0, *ticks, 20, 0, 1, 0, born, 0]
        directory = self.root / str(pid)
        directory.mkdir(exist_ok=True)
        # a command name with a space and a parenthesis, as a process may choose
        (directory / "stat").write_text(f"{pid} (postgres: x) {' '.join(map(str, fields))}\n")
        (directory / "cmdline").write_bytes(title.encode() + b"\0")
        self.list_children()

    def list_children(self) -> None:
        if not self.children_file or not (self.root / str(POSTMASTER)).exists():
            return
        pids = [
            stat.pid
            for entry in self.root.iterdir()
            if (stat := read_stat(int(entry.name), self.root)) and stat.ppid == POSTMASTER
        ]
        task = self.root / str(POSTMASTER) / "task" / str(POSTMASTER)
        task.mkdir(parents=True, exist_ok=True)
        (task / "children").write_text(" ".join(map(str, pids)) + " ")

    def exit(self, pid: int, final_own: float) -> None:
        """The child spends up to ``final_own`` in all, exits and is waited for."""
        parent = read_stat(POSTMASTER, self.root)
        assert parent is not None
        for name in ("stat", "cmdline"):
            (self.root / str(pid) / name).unlink()
        (self.root / str(pid)).rmdir()
        self.list_children()
        self.put(POSTMASTER, 1, parent.own, parent.waited_children + final_own)


def backend(port: int) -> str:
    return f"postgres: hotline {DB} 127.0.0.1({port}) idle"


@pytest.fixture(params=["children file", "scan"])
def proc(tmp_path: Path, request: pytest.FixtureRequest) -> FakeProc:
    fake = FakeProc(tmp_path, children_file=request.param == "children file")
    fake.put(POSTMASTER, 1, own=1.0, title="/usr/lib/postgresql/15/bin/postgres -D x")
    fake.put(101, POSTMASTER, own=5.0, title="postgres: walwriter")
    fake.put(102, POSTMASTER, own=2.0, title=backend(5001))
    fake.put(999, 1, own=50.0, title="python not a child")
    return fake


def test_children_that_exit_during_the_window_count_with_their_last_seconds(
    proc: FakeProc,
) -> None:
    tree = TreeCpu(POSTMASTER, proc.root)
    tree.start()
    proc.put(102, POSTMASTER, own=4.0, title=backend(5001))
    proc.put(103, POSTMASTER, own=1.0, title=backend(5002))  # an overflow connection
    tree.sample()
    proc.exit(102, final_own=4.5)  # 0.5 s after its last sample
    proc.exit(103, final_own=3.0)  # 2 s after its last sample
    proc.put(104, POSTMASTER, own=0.0, title=backend(5003))
    proc.exit(104, final_own=1.0)  # born and gone between two samples
    proc.put(101, POSTMASTER, own=6.0, title="postgres: walwriter")
    proc.put(999, 1, own=80.0, title="python not a child")
    tree.sample()

    # walwriter 1 + backend 102 2.5 + backend 103 3 + backend 104 1
    assert tree.total() == pytest.approx(7.5)
    assert tree.by_child() == {
        (101, 7): pytest.approx(1.0),
        (102, 7): pytest.approx(2.0),
        (103, 7): pytest.approx(1.0),
    }
    found = cpu_by_kind(tree, DB, own_pids=set())
    assert found["backends"] == pytest.approx(3.0)
    assert found["walwriter"] == pytest.approx(1.0)
    assert found["unsampled"] == pytest.approx(3.5)
    assert found["total"] == pytest.approx(7.5)


def test_a_reused_pid_is_another_process(proc: FakeProc) -> None:
    tree = TreeCpu(POSTMASTER, proc.root)
    tree.start()
    proc.exit(102, final_own=3.0)
    proc.put(102, POSTMASTER, own=0.5, title=backend(5004), born=900)
    tree.sample()

    assert tree.total() == pytest.approx(1.5)
    assert tree.by_child()[(102, 900)] == pytest.approx(0.5)


def test_process_kinds_from_postgresql_titles() -> None:
    assert process_kind(backend(5001), DB, set(), 1) == "backends"
    assert process_kind(backend(5001), DB, {1}, 1) == "bench"
    assert process_kind("postgres: hotline hotline 127.0.0.1(9) idle", DB, set(), 1) == (
        "other databases"
    )
    assert process_kind("postgres: hotline hotline_tx [local] idle", DB, set(), 1) == (
        "other databases"
    )
    assert process_kind("postgres: checkpointer", DB, set(), 1) == "checkpointer"
    assert process_kind(f"postgres: autovacuum worker {DB}", DB, set(), 1) == (
        "autovacuum worker (this database)"
    )


def test_reads_this_process_from_the_real_proc() -> None:
    me = read_stat(os.getpid())
    assert me is not None
    assert me.ppid == os.getppid()
    assert me.own >= 0.0
