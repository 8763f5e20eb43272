"""CPU per event of reading an envelope off the bus and its payload into its model: what
each consumer does for every event it takes (``shared.bus.decode`` → ``Envelope.from_json``,
then ``parse_payload``; for a set-based handler's types, ``decode`` reads each straight into
its model, ``Received``), on the events a ticket's consumers read most (its registration, its
dispatch, a clock's deadline): the examples in docs/events, as the outbox writes them.

    python bench/decode.py [events per round] [rounds]

prints JSON: microseconds of CPU per event (the best round and the median) for the envelope
(``from_json``), the payload (``parse_payload``) and both, and for a batch of them decoded
as a group does, as envelopes (``decoded``) or read as their models (``read``), each event
then taken as its model. Compare two trees by running each
from its own checkout, alternating, minutes apart (the machine's speed drifts)."""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shared.bus import decode
from shared.events import EVENT_TYPES, Envelope, parse_payload

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events"
TYPES = ("ticket.registered", "ticket.dispatched", "sla.deadline_set")


def examples() -> list[bytes]:
    """The first example of each of ``TYPES``, in the bytes ``Envelope.to_json`` writes."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))
    blocks = re.findall(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)
    first: dict[str, bytes] = {}
    for block in blocks:
        envelope = Envelope.from_json(block.encode())
        first.setdefault(envelope.type, envelope.to_json())
    return [first[t] for t in TYPES]


def per_event(
    step: Callable[[bytes], object], raws: list[bytes], n: int, rounds: int, events: int = 1
) -> dict:
    """CPU microseconds an event of ``step`` (which takes ``events`` events at a time)."""
    times = []
    steps = max(1, n // events // len(raws))
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(steps):
            for raw in raws:
                step(raw)
        times.append((time.process_time() - start) / (steps * len(raws) * events) * 1e6)
    return {"best_us": round(min(times), 3), "median_us": round(statistics.median(times), 3)}


WANTED = frozenset(TYPES)
MODELS = {t: EVENT_TYPES[t] for t in TYPES}


BATCH = 50  # events a batch, all of one type


def _decoded(values: list[bytes], models: dict[str, type] | None) -> object:
    """A batch as a consumer decodes it (its types wanted) and takes its events."""
    batch, _ = decode(values, WANTED, None, models)
    return [e.event() for e in batch]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    raws = examples()
    envelopes = {raw: Envelope.from_json(raw) for raw in raws}
    batches = {raw: [raw] * BATCH for raw in raws}
    result = {
        "envelope": per_event(Envelope.from_json, raws, n, rounds),
        "payload": per_event(lambda raw: parse_payload(envelopes[raw]), raws, n, rounds),
        "both": per_event(lambda raw: parse_payload(Envelope.from_json(raw)), raws, n, rounds),
        "decoded": per_event(lambda raw: _decoded(batches[raw], None), raws, n, rounds, BATCH),
        "read": per_event(lambda raw: _decoded(batches[raw], MODELS), raws, n, rounds, BATCH),
        "bytes_per_event": round(statistics.mean(len(r) for r in raws)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
