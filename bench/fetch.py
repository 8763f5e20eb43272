"""CPU of fetching a ticket's events off Kafka, for the consumer groups and for the broker:
the bench's traffic (each ticket registered and dispatched on ``hotline.tickets``, two clock
deadlines on ``hotline.sla``, as the outbox writes them) produced live by a child process
at ``rate`` tickets a second for ``seconds``, in relay-like rounds, while this process's
``KafkaBus`` runs the services' consumer groups (their topics, the types they handle,
the types read as models) with handlers that do nothing: what is measured is the fetch,
the records, the decode and the passing over of the types a group does not handle.

    python bench/fetch.py [rate] [seconds] [rounds]

BENCH_GROUPS (comma-separated, default all six: intake,dispatch,sla,knowledge,evaluation,
channels; empty: none, the broker's cost of the produce alone); BENCH_DROP_ALL=1: each group
passes every record over (the cost of a record a group does not need, alone); BENCH_ROOT:
the tree whose ``shared`` runs (this one's by default), to compare two trees; FETCH_WAIT_MS,
FETCH_MIN_BYTES, COMMIT_SECONDS (default: the services' settings); BENCH_PARTITIONS=3,1: rounds
alternate the topics' partition counts (A B B A ..., ``rounds`` pairs; with BENCH_QUIET=1 only
those of the topics this load leaves quiet, tickets and sla at the default); BENCH_LEAN=ab: rounds
alternate without and with ``shared.bus.lean_records`` (A B B A ...), ``rounds`` pairs;
BENCH_CRC=ab: rounds alternate the fetched batches' CRCs checked by aiokafka and by
``shared.bus.checked_records``; BENCH_RELAXED=ab: rounds alternate every group at
FETCH_WAIT_MS / FETCH_MIN_BYTES and RELAXED_GROUPS at RELAXED_WAIT_MS / RELAXED_MIN_BYTES
(each with a bus of its own).

Prints JSON per round: this process's CPU (the consumers), the producing child's and the
broker's (from /proc of the Kafka pid) in microseconds a ticket and a record fetched (a
record reaching a group), and fetches a second, from the producer's first round until every
group has passed its last record."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.e2e import cpu_seconds, kafka_pid  # noqa: E402
from shared.bus import KafkaBus, LiveTypes, RawEvent, Wanted  # noqa: E402
from shared.events import Envelope  # noqa: E402
from shared.http_server import freeze_startup_heap  # noqa: E402
from shared.service import read_models  # noqa: E402
from shared.settings import Settings  # noqa: E402

BOOTSTRAP = os.environ.get("BENCH_KAFKA", "127.0.0.1:9092")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "events"
GROUPS = ("intake", "dispatch", "sla", "knowledge", "evaluation", "channels")
DEFAULTS = Settings(env="test")
DROP_ALL = os.environ.get("BENCH_DROP_ALL") == "1"
EVERY = float(os.environ.get("PRODUCE_EVERY_MS", 10)) / 1000  # the producer's rounds


def traffic() -> dict[str, bytes]:
    """A registration, a dispatch and the two deadlines of a ticket (docs/events' examples)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))
    blocks = re.findall(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)
    found: dict[str, Envelope] = {}
    for block in blocks:
        envelope = Envelope.from_json(block.encode())
        found.setdefault(envelope.type, envelope)
    deadline = found["sla.deadline_set"]
    clocks = {
        "dispatch": deadline,
        "acceptance": deadline.model_copy(
            update={"payload": {**deadline.payload, "clock": "acceptance"}}
        ),
    }
    return {
        "registered": found["ticket.registered"].to_json(),
        "dispatched": found["ticket.dispatched"].to_json(),
        **{f"deadline:{k}": v.to_json() for k, v in clocks.items()},
    }


def ticket_events(n: int, kinds: dict[str, bytes]) -> list[RawEvent]:
    key = f"T{n:08d}"
    trace = uuid.uuid4().hex
    topic = {"registered": "hotline.tickets", "dispatched": "hotline.tickets"}
    return [RawEvent(topic.get(k, "hotline.sla"), key, v, trace) for k, v in kinds.items()]


async def produce(prefix: str, rate: float, seconds: float) -> None:
    """The child: ``rate`` tickets a second for ``seconds``, a relay round every
    PRODUCE_EVERY_MS (10 ms)."""
    bus = KafkaBus(BOOTSTRAP, prefix=prefix)
    await bus.start()
    kinds = traffic()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's CPU readings are taken
    start, sent, rounds, cpu0 = time.monotonic(), 0, 0, _self_cpu()
    total = int(rate * seconds)
    while sent < total:
        rounds += 1
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        events = [e for n in range(sent, due) for e in ticket_events(n, kinds)]
        sent = due
        await bus.publish_raw(events)
        await asyncio.sleep(EVERY)
    cpu = _self_cpu() - cpu0
    await bus.stop()
    print(json.dumps({"tickets": sent, "rounds": rounds, "cpu": cpu}), flush=True)


def spec_of(name: str) -> Any:
    from importlib import import_module

    return import_module(f"services.{name}.app").SPEC


def group_types(name: str, spec: Any) -> Any:
    if spec.wanted_types is None:
        return set(spec.handlers)
    # channels with no webhook subscription: what it reads here, the clocks' deadlines
    # other than the completion clock's passed over unparsed
    from services.channels.handlers import READ_HERE
    from services.channels.handlers.open311 import OTHER_CLOCKS

    async def now() -> Wanted:
        return Wanted(READ_HERE, {"sla.deadline_set": OTHER_CLOCKS})

    return LiveTypes(spec.handlers, now)


def _bus(prefix: str, wait_ms: int, min_bytes: int, partitions: int = 3) -> KafkaBus:
    return KafkaBus(
        BOOTSTRAP,
        prefix=prefix,
        partitions=partitions,
        batch_size=DEFAULTS.consumer_batch_size,
        fetch_wait_ms=wait_ms,
        fetch_min_bytes=min_bytes,
        commit_seconds=float(os.environ.get("COMMIT_SECONDS", DEFAULTS.kafka_commit_seconds)),
    )


async def one_round(
    groups: list[str],
    rate: float,
    seconds: float,
    relaxed: frozenset[str] = frozenset(),
    partitions: int = DEFAULTS.kafka_partitions,
    quiet_partitions: int | None = None,
) -> dict[str, Any]:
    """One round; the ``relaxed`` groups with a bus of their own whose fetches wait
    RELAXED_WAIT_MS for RELAXED_MIN_BYTES; the topics this load leaves quiet (all but
    tickets and sla) made with ``quiet_partitions`` partitions if given."""
    from shared.events import topic_for

    prefix = f"benchfetch{uuid.uuid4().hex[:8]}."
    if quiet_partitions is not None:
        await _make_quiet_topics(prefix, quiet_partitions)
    bus = _bus(
        prefix,
        int(os.environ.get("FETCH_WAIT_MS", DEFAULTS.kafka_fetch_wait_ms)),
        int(os.environ.get("FETCH_MIN_BYTES", DEFAULTS.kafka_fetch_min_bytes)),
        partitions,
    )
    slow = _bus(
        prefix,
        int(os.environ.get("RELAXED_WAIT_MS", 1000)),
        int(os.environ.get("RELAXED_MIN_BYTES", 1 << 20)),
        partitions,
    )
    taken: dict[str, int] = {}
    topics_of: dict[str, set[str]] = {}
    for name in groups:
        spec = spec_of(name)
        topics_of[name] = {topic_for(t) for t in spec.handlers}
        taken[name] = 0

        async def handler(batch: Any, name: str = name) -> None:
            taken[name] += len(batch)

        on = slow if name in relaxed else bus
        if DROP_ALL:  # the cost of the records a group passes over, alone
            on.subscribe(name, sorted(topics_of[name]), handler, ["nobody.wants"])
        else:
            types, models = group_types(name, spec), read_models(spec)
            on.subscribe(name, sorted(topics_of[name]), handler, types, models=models)
    buses = [b for b in (bus, slow) if b._subs]
    for b in buses:
        await b.start()
    subs = {**bus._subs, **slow._subs}
    # every group assigned before the load begins
    while any(s.rebalancing for s in subs.values()):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    freeze_startup_heap()  # as a serving process does once started
    broker = kafka_pid()
    child = subprocess.Popen(
        [sys.executable, __file__, "produce", prefix, str(rate), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    assert child.stdout is not None and child.stdin is not None
    await asyncio.to_thread(child.stdout.readline)  # started, connected
    kinds = traffic()
    per_topic: dict[str, int] = {}
    for k in kinds:
        t = "hotline.sla" if k.startswith("deadline") else "hotline.tickets"
        per_topic[t] = per_topic.get(t, 0) + 1
    tickets = int(rate * seconds)
    expected = {
        name: sum(per_topic.get(t, 0) for t in topics_of[name]) * tickets for name in groups
    }
    cpu0, broker0, t0 = _self_cpu(), cpu_seconds(broker) if broker else 0.0, time.monotonic()
    fetches0, threads0 = _fetches(subs), broker_threads(broker)
    child.stdin.write(b"go\n")
    child.stdin.flush()
    drained: dict[str, float] = {}  # when each group had passed its last record
    while True:
        done = {
            name: sum(n for tp, n in subs[name].handled.items()) >= expected[name]
            for name in groups
        }
        for name, yes in done.items():
            if yes and name not in drained:
                drained[name] = time.monotonic()
        if all(done.values()) and child.poll() is not None:
            break
        if time.monotonic() - t0 > seconds + 60:
            raise RuntimeError(f"not drained: {done}")
        await asyncio.sleep(0.01)
    cpu1, broker1, t1 = _self_cpu(), cpu_seconds(broker) if broker else 0.0, time.monotonic()
    fetches = _fetches(subs) - fetches0
    threads = broker_threads(broker)
    by_thread = {k: (v - threads0.get(k, 0.0)) / tickets * 1e6 for k, v in threads.items()}
    out = json.loads(child.stdout.read() or b"{}")  # type: ignore[union-attr]
    for b in buses:
        await b.stop()
    await _drop_topics(prefix)
    records = sum(expected.values())
    return {
        "tickets": out.get("tickets"),
        "produce_rounds": out.get("rounds"),
        "records": records,
        "elapsed": round(t1 - t0, 2),
        "consumers_us_a_ticket": (cpu1 - cpu0) / tickets * 1e6,
        "consumers_us_a_record": (cpu1 - cpu0) / max(1, records) * 1e6,
        "broker_us_a_ticket": (broker1 - broker0) / tickets * 1e6,
        "producer_us_a_ticket": out.get("cpu", 0.0) / tickets * 1e6,
        "broker_us_a_record": (broker1 - broker0) / max(1, records) * 1e6,
        "fetches": fetches,
        "broker_us_a_ticket_by_thread": {
            k: round(v, 1) for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v > 0
        },
        "records_a_fetch": records / max(1, fetches),
        # after the load's first event: its last event passed by each group
        "drained_s": {name: round(at - t0, 2) for name, at in drained.items()},
    }


async def _make_quiet_topics(prefix: str, partitions: int) -> None:
    """The topics the bench's load leaves quiet, made before the buses make the rest."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.bus import await_topics
    from shared.events import TOPICS

    quiet = [f"{prefix}{t}" for t in TOPICS if t not in ("hotline.tickets", "hotline.sla")]
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in quiet])
        await await_topics(admin, quiet)
    finally:
        await admin.close()


async def _drop_topics(prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(prefix)])
    finally:
        await admin.close()


def broker_threads(pid: int | None) -> dict[str, float]:
    """The broker's CPU seconds by thread name (digits dropped: a pool's threads together)."""
    if not pid:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = re.sub(r"[\d#-]+", "", (task / "comm").read_text().strip()) or "?"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _fetches(subs: dict[str, Any]) -> int:
    """Fetch requests the groups' consumers have sent (their clients' sensors)."""
    n = 0
    for sub in subs.values():
        consumer = sub.consumer
        fetcher = getattr(consumer, "_fetcher", None)
        n += getattr(fetcher, "bench_fetches", 0)
    return n


def _count_fetches() -> None:
    """Count each fetcher's fetch requests (a bench's own hook, not the bus's)."""
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher._proc_fetch_request

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.bench_fetches = getattr(self, "bench_fetches", 0) + 1
        return await original(self, *args, **kwargs)

    Fetcher._proc_fetch_request = counted  # type: ignore[method-assign]


def lean_pairs(groups: list[str], rate: float, seconds: float, pairs: int) -> dict[str, Any]:
    """Rounds with the bus's consumers taking ``ConsumerRecord``s (A: ``lean_records``
    off) and the records as parsed (B), alternating A B B A, in this one process."""
    import uvloop

    import shared.bus as bus

    lean = bus.lean_records
    got: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for n in range(pairs):
        for way in "AB" if n % 2 == 0 else "BA":
            bus.lean_records = lean if way == "B" else (lambda: False)  # type: ignore[assignment]
            got[way].append(uvloop.run(one_round(groups, rate, seconds)))
    bus.lean_records = lean  # type: ignore[assignment]
    keys = ("consumers_us_a_ticket", "consumers_us_a_record", "broker_us_a_ticket")
    return {way: {k: [round(r[k], 2) for r in rounds] for k in keys} for way, rounds in got.items()}


def crc_pairs(groups: list[str], rate: float, seconds: float, pairs: int) -> dict[str, Any]:
    """Rounds with the fetched batches' CRCs checked by aiokafka (A) and by the bus's
    ``checked_records`` (B), alternating A B B A, in this one process."""
    import uvloop
    from aiokafka.consumer import fetcher
    from aiokafka.record.memory_records import MemoryRecords

    import shared.bus as bus

    checked = bus.checked_records
    if not checked():
        raise SystemExit("this tree's bus cannot check CRCs itself (no crc32c?)")
    ours = fetcher.MemoryRecords
    got: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for n in range(pairs):
        for way in "AB" if n % 2 == 0 else "BA":
            fetcher.MemoryRecords = ours if way == "B" else MemoryRecords
            bus.checked_records = checked if way == "B" else (lambda: False)  # type: ignore[assignment]
            got[way].append(uvloop.run(one_round(groups, rate, seconds)))
    fetcher.MemoryRecords, bus.checked_records = ours, checked  # type: ignore[assignment]
    keys = ("consumers_us_a_ticket", "consumers_us_a_record", "broker_us_a_ticket")
    return {way: {k: [round(r[k], 2) for r in rounds] for k in keys} for way, rounds in got.items()}


def relaxed_pairs(groups: list[str], rate: float, seconds: float, pairs: int) -> dict[str, Any]:
    """Rounds with every group at the services' fetch settings (A) and RELAXED_GROUPS
    (default intake, knowledge, evaluation, channels) relaxed (B), A B B A ..."""
    import uvloop

    names = os.environ.get("RELAXED_GROUPS", "intake,knowledge,evaluation,channels")
    relaxed = {"A": frozenset(), "B": frozenset(names.split(","))}
    got: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for n in range(pairs):
        for way in "AB" if n % 2 == 0 else "BA":
            got[way].append(uvloop.run(one_round(groups, rate, seconds, relaxed[way])))
    keys = ("consumers_us_a_ticket", "broker_us_a_ticket", "fetches", "drained_s")
    return {way: {k: [r[k] for r in rounds] for k in keys} for way, rounds in got.items()}


def partition_pairs(groups: list[str], rate: float, seconds: float, pairs: int) -> dict[str, Any]:
    """Rounds with the topics made of BENCH_PARTITIONS' first count of partitions (A) and its
    second (B), alternating A B B A, in this one process."""
    import uvloop

    a, b = (int(n) for n in os.environ["BENCH_PARTITIONS"].split(","))
    # BENCH_QUIET=1: only the quiet topics' partitions change (tickets and sla at the default)
    quiet = os.environ.get("BENCH_QUIET") == "1"
    got: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for n in range(pairs):
        for way in "AB" if n % 2 == 0 else "BA":
            parts = a if way == "A" else b
            if quiet:
                run = one_round(groups, rate, seconds, quiet_partitions=parts)
            else:
                run = one_round(groups, rate, seconds, partitions=parts)
            got[way].append(uvloop.run(run))
    keys = (
        "consumers_us_a_ticket",
        "broker_us_a_ticket",
        "producer_us_a_ticket",
        "fetches",
        "produce_rounds",
        "drained_s",
    )
    return {
        f"{way}={a if way == 'A' else b}": {
            k: [round(r[k], 2) if isinstance(r[k], float) else r[k] for r in rounds] for k in keys
        }
        for way, rounds in got.items()
    }


def main() -> None:
    if sys.argv[1:2] == ["produce"]:
        import uvloop

        prefix, rate, seconds = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
        uvloop.run(produce(prefix, rate, seconds))
        return
    import uvloop

    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    groups = [g for g in os.environ.get("BENCH_GROUPS", ",".join(GROUPS)).split(",") if g]
    _count_fetches()
    if os.environ.get("BENCH_PARTITIONS"):
        print(json.dumps(partition_pairs(groups, rate, seconds, rounds)), flush=True)
        return
    if os.environ.get("BENCH_RELAXED") == "ab":
        print(json.dumps(relaxed_pairs(groups, rate, seconds, rounds)), flush=True)
        return
    if os.environ.get("BENCH_CRC") == "ab":
        print(json.dumps(crc_pairs(groups, rate, seconds, rounds)), flush=True)
        return
    if os.environ.get("BENCH_LEAN") == "ab":
        print(json.dumps(lean_pairs(groups, rate, seconds, rounds)), flush=True)
        return
    results = [uvloop.run(one_round(groups, rate, seconds)) for _ in range(rounds)]
    summary: dict[str, Any] = {"rate": rate, "seconds": seconds, "groups": groups}
    for key in results[0]:
        values = [r[key] for r in results]
        if isinstance(values[0], float):
            summary[key] = {
                "best": round(min(values), 2),
                "median": round(statistics.median(values), 2),
            }
        else:
            summary[key] = values
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
