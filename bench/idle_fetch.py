"""What idle Kafka consumer groups cost: six groups of one ``KafkaBus`` subscribed to
``hotline.tickets`` (a prefix of their own), joined, then left with nothing to read for
``seconds``. Prints JSON per window: this process's CPU and the broker's (from /proc of the
Kafka pid: kafka.sh's ``HOTLINE_RUN_DIR``), in ms a second, and the fetch requests the
consumers sent a second. IDLE_WAYS (default ``500:1000,5000:5000``): the two ways compared,
each the idle long poll (``shared.bus.IDLE_FETCH_WAIT_MS``) and the fetch routine's and the
idle ``getmany``'s timeouts (``FETCHER_TIMEOUT_MS``, ``IDLE_GETMANY_MS``), in ms, alternated
A B B A over ``rounds`` pairs.

    python bench/idle_fetch.py [seconds] [rounds]

BENCH_KAFKA: the broker (default 127.0.0.1:9092; bench/fetch.py's too)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shared.bus as bus  # noqa: E402
from bench.e2e import cpu_seconds, kafka_pid  # noqa: E402
from bench.fetch import _count_fetches, _drop_topics, _fetches  # noqa: E402

BOOTSTRAP = os.environ.get("BENCH_KAFKA", "127.0.0.1:9092")


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def window(way: str, seconds: float) -> dict[str, Any]:
    idle_ms, timer_ms = (int(ms) for ms in way.split(":"))
    bus.IDLE_FETCH_WAIT_MS = idle_ms
    bus.FETCHER_TIMEOUT_MS = bus.IDLE_GETMANY_MS = timer_ms
    prefix = f"benchidle{uuid.uuid4().hex[:8]}."
    kafka = bus.KafkaBus(BOOTSTRAP, prefix=prefix)

    async def nothing(batch: Any) -> None:
        return None

    for n in range(6):
        kafka.subscribe(f"g{n}", ["hotline.tickets"], nothing)
    await kafka.start()
    subs = kafka._subs
    while any(s.rebalancing for s in subs.values()):
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # settled: every consumer long-polling
    broker = kafka_pid()
    cpu0, broker0, fetches0, t0 = _self_cpu(), cpu_seconds(broker), _fetches(subs), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, broker1, fetches1, t1 = _self_cpu(), cpu_seconds(broker), _fetches(subs), time.monotonic()
    await kafka.stop()
    await _drop_topics(prefix)
    span = t1 - t0
    return {
        "idle_fetch_wait_ms": idle_ms,
        "fetcher_and_getmany_timeout_ms": timer_ms,
        "consumers_ms_a_second": round((cpu1 - cpu0) / span * 1000, 2),
        "broker_ms_a_second": round((broker1 - broker0) / span * 1000, 2),
        "fetches_a_second": round((fetches1 - fetches0) / span, 2),
    }


def main() -> None:
    import uvloop

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    a, b = os.environ.get("IDLE_WAYS", "500:1000,5000:5000").split(",")
    _count_fetches()
    for n in range(rounds):
        for way in (a, b) if n % 2 == 0 else (b, a):
            print(json.dumps(uvloop.run(window(way, seconds))), flush=True)


if __name__ == "__main__":
    main()
