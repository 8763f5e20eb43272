"""PostgreSQL's work a ticket over bench/e2e.py's measured window, from what
bench/pg_window_hook.sh kept (issue 12): the WAL by relation and by record type (pg_waldump
over the window's segments, the blocks named by the bench database's relfilenodes), full-
page images, WAL writes and fsyncs, checkpoints, table writes and index scans, and, if
perf recorded the backends, their CPU by what the call chain was doing.

    python bench/pg_window.py OUT_DIR [tickets]

``tickets``: the window's tickets (default: ``accepted`` of OUT_DIR/e2e.json). Prints JSON,
every figure a ticket. The CPU shares need perf (``PG_WINDOW_PERF=1``); they are shares
of the samples, scaled by ``cpu_ms_per_ticket.postgresql_backends`` when e2e.json has it.
A sample goes to the first category whose functions its chain holds, in the order below
(a WAL insert inside a B-tree insert counts as the WAL insert); functions PostgreSQL does
not export show as addresses and are not matched."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

WALDUMP = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_waldump"))), None)
RECORD = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s+\d+/\s*(\d+), .* desc: (\S+)(.*)")
BLOCK = re.compile(r"blkref #\d+: rel \d+/(\d+)/(\d+)(?: fork (\w+))? blk \d+( FPW)?")
# (category, functions any of which in a sample's chain puts it there), first match wins
CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(functions.split()))
    for name, functions in (
        ("commit: WAL flush (write, fdatasync)", "XLogFlush"),
        ("commit: other", "CommitTransactionCommand CommitTransaction AbortCurrentTransaction"),
        ("executor: WAL record inserts", "XLogInsert XLogInsertRecord"),
        ("executor: B-tree inserts", "_bt_doinsert btinsert"),
        ("executor: GIN inserts", "gininsert ginInsertCleanup gin_clean_pending_list"),
        (
            "executor: heap writes (insert, update, lock, delete)",
            "heap_insert heap_update heap_lock_tuple heap_delete heap_abort_speculative"
            " heap_finish_speculative",
        ),
        (
            "executor: index lookups",
            "index_getnext_slot index_fetch_heap _bt_first btgettuple index_getnext_tid"
            " check_exclusion_or_unique_constraint ExecCheckIndexConstraints",
        ),
        (
            "executor: start and end",
            "standard_ExecutorStart ExecutorStart standard_ExecutorEnd ExecutorEnd PortalStart"
            " ExecInitNode PortalDrop",
        ),
        ("executor: JSON and array input", "json_in json_lex array_in text_to_array"),
        ("executor: the rest", "standard_ExecutorRun ExecutorRun PortalRun PortalRunMulti"),
        (
            "plan cache and planning",
            "GetCachedPlan BuildCachedPlan pg_plan_queries planner standard_planner",
        ),
        (
            "parse and analysis",
            "pg_parse_query raw_parser parse_analyze_fixedparams parse_analyze_varparams"
            " RevalidateCachedQuery CreateCachedPlan CompleteCachedPlan",
        ),
        (
            "bind: parameters",
            "ReceiveFunctionCall OidReceiveFunctionCall array_recv InputFunctionCall",
        ),
        (
            "network: read",
            "pq_getbyte pq_getmessage secure_read pq_recvbuf WaitEventSetWait pq_startmsgread",
        ),
        (
            "network: write",
            "secure_write pq_flush socket_flush internal_flush pq_flush_if_writable"
            " pq_endmessage printtup EndCommand ReadyForQuery",
        ),
        ("transaction start", "StartTransactionCommand StartTransaction GetSnapshotData"),
    )
)


def lines(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("|") for line in path.read_text().splitlines() if line]


def wal(out: Path, tickets: float) -> dict[str, Any]:
    """The window's WAL by relation and by record type, a ticket."""
    lsn = dict(line.split()[:2] for line in (out / "lsn.txt").read_text().splitlines())
    rels = lines(out / "rels.txt")
    database = rels[0][0] if rels else ""
    names = {relfilenode: name for _, relfilenode, name in rels}
    if WALDUMP is None:
        return {"error": "pg_waldump not found"}
    dump = subprocess.run(
        [str(WALDUMP), "-p", str(out / "wal"), "-s", lsn["start"], "-e", lsn["stop"]],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    by_relation: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    types: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    total = [0, 0, 0]
    for line in dump.splitlines():
        found = RECORD.match(line)
        if not found:
            continue
        manager, length, kind, rest = found.groups()
        blocks = BLOCK.findall(rest)
        if blocks:
            db, relfilenode, fork, _ = blocks[0]
            if db not in (database, "0"):
                name = f"(database {db})"
            else:
                name = names.get(relfilenode, f"relfilenode {relfilenode}")
                name += f" [{fork}]" if fork and fork != "main" else ""
        else:
            name = f"<{manager}>"
        images = sum(1 for b in blocks if b[3])
        for into in (by_relation[name], total):
            into[0] += 1
            into[1] += int(length)
            into[2] += images
        by_type[f"{manager}:{kind}"][0] += 1
        by_type[f"{manager}:{kind}"][1] += int(length)
        types[name][f"{manager}:{kind}"] += 1
    n = max(tickets, 1.0)
    return {
        "records": round(total[0] / n, 2),
        "bytes": round(total[1] / n),
        "full_page_images": round(total[2] / n, 3),
        "by_relation": {
            name: {
                "records": round(c / n, 2),
                "bytes": round(b / n),
                "full_page_images": round(f / n, 3),
                "types": {t: round(k / n, 2) for t, k in types[name].most_common(4)},
            }
            for name, (c, b, f) in sorted(by_relation.items(), key=lambda x: -x[1][0])
            if c / n >= 0.01
        },
        "by_type": {
            t: {"records": round(c / n, 2), "bytes": round(b / n)}
            for t, (c, b) in sorted(by_type.items(), key=lambda x: -x[1][0])
            if c / n >= 0.01
        },
    }


def counters(out: Path, tickets: float) -> dict[str, Any]:
    """WAL writes, fsyncs and checkpoints (the server's), table writes and index scans (the
    bench database's), a ticket, over the window."""
    n = max(tickets, 1.0)
    walstat = (out / "walstat.txt").read_text().splitlines()
    stat = {line.split()[0]: line.split()[1:] for line in walstat}
    delta = [int(b) - int(a) for a, b in zip(stat["start"], stat["stop"], strict=True)]
    tables: dict[str, dict[str, list[int]]] = collections.defaultdict(dict)
    for moment, name, *values in lines(out / "tab.txt"):
        tables[name][moment] = [int(v or 0) for v in values]
    writes = {}
    for name, at in sorted(tables.items()):
        if "start" in at and "stop" in at:
            ins, upd, hot, dele = (b - a for a, b in zip(at["start"], at["stop"], strict=True))
            if ins + upd + dele:
                writes[name] = {
                    "ins": round(ins / n, 2),
                    "upd": round(upd / n, 2),
                    "not_hot": round((upd - hot) / n, 2),
                    "del": round(dele / n, 2),
                }
    scans: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for moment, name, value in lines(out / "idx.txt"):
        scans[name][moment] = int(value or 0)
    return {
        "wal_writes": round(delta[3] / n, 3),
        "wal_fsyncs": round(delta[4] / n, 3),
        "checkpoints_in_window": {"timed": delta[5], "requested": delta[6]},
        "table_writes": writes,
        "index_scans": {
            name: round((at["stop"] - at["start"]) / n, 2)
            for name, at in sorted(scans.items())
            if "start" in at and "stop" in at and at["stop"] > at["start"]
        },
    }


def cpu(out: Path, backend_us: float | None) -> dict[str, Any] | None:
    """The backends' perf samples by category (share, and µs a ticket if known)."""
    data = out / "perf.data"
    if not data.exists():
        return None
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "pid,event,ip,sym,dso"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found: collections.Counter[str] = collections.Counter()
    chain: set[str] = set()
    samples = 0

    def close() -> None:
        nonlocal samples
        if not chain:
            return
        samples += 1
        for name, functions in CATEGORIES:
            if chain & functions:
                found[name] += 1
                break
        else:
            found["other"] += 1
        chain.clear()

    for line in script.splitlines():
        if not line.startswith("\t"):
            close()
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            chain.add(parts[1].rsplit(" (", 1)[0])
    close()
    return {
        "samples": samples,
        "categories": {
            name: {
                "share": round(count / max(samples, 1), 3),
                **(
                    {"us_per_ticket": round(backend_us * count / samples, 1)}
                    if backend_us and samples
                    else {}
                ),
            }
            for name, count in found.most_common()
        },
    }


def main() -> None:
    out = Path(sys.argv[1])
    e2e: dict[str, Any] = {}
    if (out / "e2e.json").exists():
        e2e = json.loads((out / "e2e.json").read_text())
    tickets = float(sys.argv[2]) if len(sys.argv) > 2 else float(e2e.get("accepted", 0))
    backends = (e2e.get("cpu_ms_per_ticket") or {}).get("postgresql_backends")
    report = {
        "tickets": tickets,
        "wal": wal(out, tickets),
        **counters(out, tickets),
        "backend_cpu": cpu(out, backends * 1000 if backends else None),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
