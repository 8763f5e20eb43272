"""CPU per event of a consumer's read of its registrations: 128-event batches of the bench's
``ticket.registered`` (bench/consumers.py's, in Chinese) decoded as each group's bus decodes
them (``shared.bus.decode`` with the group's models, ``read_models``) and taken as the
set-based handler takes them (``parse_payloads``), for dispatch (the whole registration)
and SLA and evaluation (what they read of it, where the tree has such a view).

    python bench/registered_read.py [events] [rounds]

Prints JSON: microseconds of CPU per event for each group (the best round and the median).
The set-up heap is frozen, as the services freeze theirs. Compare two trees by running each
from its own checkout, alternating, minutes apart (the machine's speed drifts)."""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BENCH_ROOT") or str(Path(__file__).resolve().parent.parent))

from bench.consumers import registrations  # noqa: E402
from services.dispatch.app import SPEC as DISPATCH  # noqa: E402
from services.evaluation.app import SPEC as EVALUATION  # noqa: E402
from services.sla.app import SPEC as SLA  # noqa: E402
from shared.bus import decode  # noqa: E402
from shared.service import read_models  # noqa: E402


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    raws = [e.to_json() for e in registrations(events, 0)]
    batches = [raws[i : i + 128] for i in range(0, len(raws), 128)]
    from shared.events import parse_payloads

    groups = {}
    for spec in (DISPATCH, SLA, EVALUATION):
        models = read_models(spec)
        assert models is not None
        groups[spec.name] = (frozenset(spec.handlers), models, models["ticket.registered"])
    gc.collect()
    gc.freeze()  # as a serving process does
    times: dict[str, list[float]] = {name: [] for name in groups}
    for _ in range(rounds):
        for name, (types, models, model) in groups.items():
            start = time.process_time()
            for batch in batches:
                got, _ = decode(batch, types, models=models)
                parse_payloads(got, model)
            times[name].append((time.process_time() - start) / len(raws) * 1e6)
    print(
        json.dumps(
            {
                name: {"best_us": round(min(t), 2), "median_us": round(statistics.median(t), 2)}
                for name, t in times.items()
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
