"""CPU intake spends on a ticket's search terms (issue 12): ``search_terms`` and the
sorted text the batch statement takes of them (``_BatchRows.add``), over the e2e bench's
ticket texts in a fresh process, each text new as in a run (the caches of runs warm as
they would). A busy machine runs other processes between two tickets, which evict the
segmenter's dictionary from the CPU's caches: with ``evict`` a walk over a buffer larger
than the caches (copied) comes before each ticket, and only the ticket's own calls are
timed.

    python bench/search_terms.py [tickets] [rounds] [evict MB]

Prints JSON: microseconds of this process's CPU per ticket (each round, the best and the
median), the runs' cache misses and the runs or pieces segmented a ticket. Compare two
trees by running each from its own checkout, alternating."""

from __future__ import annotations

import json
import statistics
import sys
import time

from e2e import ticket_bodies  # bench/ holds this script: its neighbour

from services.intake import domain
from services.intake.domain import search_terms, warm_up_segmenter


def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    evict_mb = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    warm_up_segmenter()
    texts = [b["content"] for b in ticket_bodies(tickets * rounds, seed=12345)]
    source = bytes(evict_mb << 20)
    target = bytearray(len(source))
    clock = time.process_time_ns
    found: list[float] = []
    misses: list[float] = []
    cuts: list[float] = []
    # what is segmented: a run's or a piece's terms made (a tree without the pieces: runs')
    segmented = [
        getattr(domain, name) for name in ("_piece_terms", "_rest_terms") if hasattr(domain, name)
    ] or [domain._run_terms]
    for r in range(rounds):
        chunk = texts[r * tickets : (r + 1) * tickets]
        before = domain._run_terms.cache_info().misses
        cuts_before = sum(f.cache_info().misses for f in segmented)
        spent = 0
        for text in chunk:
            if evict_mb:
                target[:] = source
            started = clock()
            " ".join(sorted(search_terms(text)))
            spent += clock() - started
        found.append(spent / len(chunk) / 1e3)
        misses.append((domain._run_terms.cache_info().misses - before) / len(chunk))
        cuts.append((sum(f.cache_info().misses for f in segmented) - cuts_before) / len(chunk))
    print(
        json.dumps(
            {
                "benchmark": "search_terms",
                "tickets_per_round": tickets,
                "evict_mb": evict_mb,
                "us_per_ticket": [round(v, 2) for v in found],
                "best": round(min(found), 2),
                "median": round(statistics.median(found), 2),
                "run_misses_per_ticket": [round(v, 2) for v in misses],
                "segmented_per_ticket": [round(v, 2) for v in cuts],
            }
        )
    )


if __name__ == "__main__":
    main()
