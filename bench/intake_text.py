"""CPU intake spends on a ticket's text before it is written (issue 12): the policy's
sensitive keywords looked for (Art 27), the search terms, and the body parsed into its
model (the requester's phone normalised). Over the e2e bench's ticket texts, each new to
the process as in a run (the per-run caches of ``search_terms`` warm as they would).

    python bench/intake_text.py [tickets] [rounds]

Prints JSON: microseconds of this process's CPU per ticket for each step (the best round
and the median). Compare two trees by running each from its own checkout, alternating."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
from e2e import ticket_bodies  # bench/ holds this script: its neighbour

from services.intake.domain import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    IntakePolicy,
    search_terms,
    sensitive_keywords_in,
    warm_up_segmenter,
)
from services.intake.schemas import TicketCreate


def per_ticket(step: Callable[[Any], object], inputs: list[Any]) -> float:
    started = time.process_time()
    for value in inputs:
        step(value)
    return (time.process_time() - started) / len(inputs) * 1e6


def main() -> None:
    tickets = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    warm_up_segmenter()
    policy = IntakePolicy.from_settings(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
    keywords = policy.sensitive_keywords
    bodies = ticket_bodies(tickets * rounds, seed=7)
    steps: dict[str, Callable[[Any], object]] = {
        "sensitive_keywords_in": lambda b: sensitive_keywords_in(b["content"], keywords),
        "search_terms": lambda b: search_terms(b["content"]),
        "body_model": lambda b: TicketCreate.model_validate_json(b["raw"]),
    }
    for body in bodies:
        body["raw"] = orjson.dumps({k: v for k, v in body.items() if k != "raw"})
    found: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        chunk = bodies[r * tickets : (r + 1) * tickets]
        for name, step in steps.items():
            found[name].append(per_ticket(step, chunk))
    print(
        json.dumps(
            {
                "benchmark": "intake_text",
                "tickets_per_round": tickets,
                "us_per_ticket": {
                    name: {"best": round(min(v), 2), "median": round(statistics.median(v), 2)}
                    for name, v in found.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
