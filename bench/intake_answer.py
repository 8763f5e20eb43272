"""CPU of intake's registration answer (issue 12): the answer written once as JSON
(``answer_json``), against the route's response model made (``registration_answer``) and
written by its serializer, as the route did before; with an Idempotency-Key the answer is
also the text sealed for the key's retries (the model's ``model_dump_json`` before).

    python bench/intake_answer.py [tickets] [rounds]

e2e's ticket bodies, an operator's registrations (the answer in full). Prints JSON:
microseconds of this process's CPU a ticket for each way (the best round and the median)."""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from e2e import ticket_bodies  # bench/ holds this script: its neighbour
from pydantic import TypeAdapter

from services.intake.handlers import registration as reg
from services.intake.schemas import TicketCreate, TicketRegistration
from shared.auth import Caller, Role
from shared.sealing import KeyRing

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
OPERATOR = Caller(sub="op-1", role=Role.OPERATOR)
MODEL_JSON = TypeAdapter(TicketRegistration).serializer.to_json


def tickets(n: int) -> list[tuple[str, dict[str, Any], TicketCreate]]:
    ring = KeyRing.development()
    matter = reg._Matter(active=True, anonymous_allowed=False, default_urgency="livelihood")
    found = []
    for i, body in enumerate(ticket_bodies(n, seed=1)):
        data = TicketCreate.model_validate(body)
        now = T0 + timedelta(microseconds=i * 1_237)
        values = reg.ticket_values(ring, OPERATOR, data, data.channel or "phone", matter, [], now)
        found.append((f"TJ20261204{i:06d}", values, data))
    return found


def model(number: str, values: dict[str, Any], data: TicketCreate) -> Any:
    return MODEL_JSON(reg.registration_answer(number, values, OPERATOR, data, []))


def model_with_key(number: str, values: dict[str, Any], data: TicketCreate) -> Any:
    answer = reg.registration_answer(number, values, OPERATOR, data, [])
    return MODEL_JSON(answer), answer.model_dump_json()


def written(number: str, values: dict[str, Any], data: TicketCreate) -> Any:
    return reg.answer_json(number, values, OPERATOR, data, [])


def written_with_key(number: str, values: dict[str, Any], data: TicketCreate) -> Any:
    answer = reg.answer_json(number, values, OPERATOR, data, [])
    return answer, answer.decode()


WAYS: dict[str, Callable[[str, dict[str, Any], TicketCreate], Any]] = {
    "model": model,
    "answer_json": written,
    "model_with_key": model_with_key,
    "answer_json_with_key": written_with_key,
}


def main(n: int, rounds: int) -> dict[str, Any]:
    work = tickets(n)
    for one in work:  # the same bytes either way
        assert written(*one) == model(*one)
    gc.collect()
    gc.freeze()  # the set-up's heap, as the services freeze theirs at start
    found: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(rounds + 1):  # the first round warms up
        for name, way in WAYS.items():
            start = time.process_time()
            for one in work:
                way(*one)
            found[name].append((time.process_time() - start) / n * 1e6)
    return {
        "tickets": n,
        "us_per_ticket": {
            name: {"best": round(min(v[1:]), 2), "median": round(statistics.median(v[1:]), 2)}
            for name, v in found.items()
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(main(n, r), indent=1))
