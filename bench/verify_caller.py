"""CPU per request of ``VerifyCaller`` alone (every service's check of the gateway's
signature: the body read, the signed identity's headers, the HMAC over the request, the
nonce), over an app that does nothing, each request freshly signed (a nonce is used once).

    python bench/verify_caller.py [requests per round] [rounds]

Prints JSON: microseconds of this process's CPU per request (the best round and the
median). Compare two trees by running each from its own checkout, alternating."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from intake_request import BODY, scope  # bench/ holds this script: its neighbour

from shared.auth import VerifyCaller
from shared.settings import Settings


async def main(requests: int, rounds: int) -> dict[str, Any]:
    settings = Settings(env="test")

    async def app(request: Any, receive: Any, send: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    verify = VerifyCaller(app, settings.service_secret)
    found: list[float] = []
    for _ in range(rounds):
        scopes = [scope(settings, None) for _ in range(requests)]
        started = time.process_time()
        for one in scopes:
            await verify(one, receive, None)  # type: ignore[arg-type]
        found.append((time.process_time() - started) / requests * 1e6)
    return {
        "benchmark": "verify_caller",
        "requests_per_round": requests,
        "cpu_us_per_request": {
            "best": round(min(found), 2),
            "median": round(statistics.median(found), 2),
        },
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print(json.dumps(asyncio.run(main(n, r)), indent=1))
