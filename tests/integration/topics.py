"""Removing the topics a test or a benchmark made on the shared Kafka broker.

Every test module and benchmark runs under its own topic prefix. Left behind, their topics
pile up on the broker of a developer machine or CI runner (thousands of partitions after a
few days): the broker then takes minutes to recover them at start and answers metadata and
group requests slowly, and a test waiting for a group to settle times out on that alone."""

from __future__ import annotations

import sys

from aiokafka.admin import AIOKafkaAdminClient


async def drop_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; returns their names. Best
    effort: a broker that does not answer is reported on stderr, not raised, so a test's
    own outcome stays what it was."""
    if not prefix:
        raise ValueError("an empty prefix would name every topic on the broker")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        await admin.start()
        mine = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if mine:
            await admin.delete_topics(mine, timeout_ms=30_000)
        return mine
    except Exception as exc:  # noqa: BLE001 - teardown: report, do not mask the test's result
        print(f"could not delete the topics {prefix}*: {exc!r}", file=sys.stderr)
        return []
    finally:
        await admin.close()
