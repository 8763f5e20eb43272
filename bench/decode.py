"""CPU per event of reading an envelope off the bus and its payload into its model: what
each consumer does for every event it takes (``shared.bus.decode`` → ``Envelope.from_json``,
then ``parse_payload``), on the events a ticket's consumers read most (its registration, its
dispatch, a clock's deadline): the examples in docs/events, as the outbox writes them.

    python bench/decode.py [events per round] [rounds]

prints JSON: microseconds of CPU per event (the best round and the median) for the envelope
(``from_json``), the payload (``parse_payload``) and both. Compare two trees by running each
from its own checkout, alternating, minutes apart (the machine's speed drifts)."""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shared.events import Envelope, parse_payload

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


def per_event(step: Callable[[bytes], object], raws: list[bytes], n: int, rounds: int) -> dict:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n // len(raws)):
            for raw in raws:
                step(raw)
        times.append((time.process_time() - start) / (n // len(raws) * len(raws)) * 1e6)
    return {"best_us": round(min(times), 3), "median_us": round(statistics.median(times), 3)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    raws = examples()
    envelopes = {raw: Envelope.from_json(raw) for raw in raws}
    result = {
        "envelope": per_event(Envelope.from_json, raws, n, rounds),
        "payload": per_event(lambda raw: parse_payload(envelopes[raw]), raws, n, rounds),
        "both": per_event(lambda raw: parse_payload(Envelope.from_json(raw)), raws, n, rounds),
        "bytes_per_event": round(statistics.mean(len(r) for r in raws)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
