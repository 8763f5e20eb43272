"""CPU per record of turning a fetched partition's bytes into what a consumer group decodes:
aiokafka's record parser (its C extension, as installed), then either aiokafka's
``ConsumerRecord`` for each record (``consumer_record``) or the parser's record as it is
(``lean``, ``shared.bus.lean_records``; ``lean, crc32c``: its batches' CRC checked by
``shared.bus.checked_records``, not by aiokafka); then, for both, ``shared.bus.decode``
of a group that passes every record over (``… + drop``). The records are the bench's traffic (a
ticket's registration, dispatch and deadline, as the outbox writes them, with the
relay's trace-id header), ``BATCH`` to a record batch, as a fetch brings them.

    python bench/fetch_records.py [records per round] [rounds]

Prints JSON: microseconds of CPU per record, the best round and the median; the two ways
alternate within each round (A B B A)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.decode import examples  # noqa: E402
from shared.bus import TRACE_HEADER, decode  # noqa: E402

BATCH = 100
READ_COMMITTED = 1
TP = TopicPartition("hotline.tickets", 0)


def fetched(n: int) -> bytes:
    """``n`` records in one record batch, as a fetch response holds a partition's."""
    raws = examples()
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
        batch_size=1 << 24,
    )
    for i in range(n):
        headers = [(TRACE_HEADER, b"%032x" % i)]
        builder.append(
            i, timestamp=None, key=b"T%08d" % i, value=raws[i % len(raws)], headers=headers
        )
    return bytes(builder.build())


def records_of(
    kind: type, data: bytes, value_deserializer: Any, records: Any = MemoryRecords
) -> list[Any]:
    """``records``: aiokafka's ``MemoryRecords`` (its CRC check on) or the bus's
    ``checked_records`` (checked as read, aiokafka's check off)."""
    checked = getattr(records, "checked", False)
    parsed = kind(
        TP, records(data), [], 0, None, value_deserializer, not checked, READ_COMMITTED
    )
    return list(parsed)


NOBODY = frozenset({"nobody.wants"})


def main() -> None:
    import shared.bus as bus

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    data = fetched(BATCH)
    plain = PartitionRecords
    lean_ok = hasattr(bus, "lean_records") and bus.lean_records()
    if not lean_ok:
        raise SystemExit("this tree has no shared.bus.lean_records")
    from aiokafka.consumer import fetcher

    lean_kind, mark = fetcher.PartitionRecords, bus._as_stored
    checked = getattr(bus, "checked_records", lambda: False)() and fetcher.MemoryRecords
    assert [r.value for r in records_of(lean_kind, data, mark)] == [
        r.value for r in records_of(plain, data, None)
    ]
    ways: dict[str, Callable[[], object]] = {
        "consumer_record": lambda: records_of(plain, data, None),
        "lean": lambda: records_of(lean_kind, data, mark),
        "consumer_record + drop": lambda: decode(
            [r.value for r in records_of(plain, data, None)], NOBODY
        ),
        "lean + drop": lambda: decode([r.value for r in records_of(lean_kind, data, mark)], NOBODY),
    }
    if checked:  # the batch's CRC checked by the bus (crc32c), not by aiokafka
        assert [r.value for r in records_of(lean_kind, data, mark, checked)] == [
            r.value for r in records_of(plain, data, None)
        ]
        ways["lean, crc32c"] = lambda: records_of(lean_kind, data, mark, checked)
    steps = max(1, n // BATCH)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for name in order:
            step = ways[name]
            start = time.process_time()
            for _ in range(steps):
                step()
            times[name].append((time.process_time() - start) / (steps * BATCH) * 1e6)
    print(
        json.dumps(
            {
                name: {"best_us": round(min(t), 3), "median_us": round(statistics.median(t), 3)}
                for name, t in times.items()
            }
        )
    )


if __name__ == "__main__":
    main()
