"""shared/batching.py: concurrent submissions share flushes, each caller gets its own
result, an item's name taken by a running flush waits for the next one, and a caller that
gives up does not cancel the others' write."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.batching import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def flush(self, items: Sequence[str]) -> list[str | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(i) if i.startswith("bad") else i.upper() for i in items]


async def test_waiting_callers_share_the_next_flush() -> None:
    rec = Recorder()
    rec.gate.clear()
    batches = GroupCommit(rec.flush, max_batch=3, max_in_flight=1)
    calls = [asyncio.create_task(batches.submit(f"t{i}")) for i in range(7)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await asyncio.gather(*calls) == [f"T{i}" for i in range(7)]
    # the first flush takes the items submitted in the loop's turn it was started in (at
    # most 3), the rest wait for the next flushes, in order
    assert rec.batches == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]]
    assert batches.flushes == 3


async def test_a_flush_takes_its_items_when_it_first_runs() -> None:
    """An idle service's flush starts at once and goes with the items submitted before it
    runs; one submitted while it runs waits for the next flush."""
    rec = Recorder()
    rec.gate.clear()
    batches = GroupCommit(rec.flush, max_batch=10, max_in_flight=1)
    first = asyncio.create_task(batches.submit("a"))
    second = asyncio.create_task(batches.submit("b"))
    await asyncio.sleep(0)  # "a" submitted and its flush started, then "b" submitted
    assert rec.batches == []
    third = asyncio.create_task(batches.submit("c"))
    await asyncio.sleep(0)  # the flush runs, then "c" is submitted
    assert rec.batches == [["a", "b"]]
    await asyncio.sleep(0)
    assert rec.batches == [["a", "b"]]  # one flush in flight: "c" waits
    rec.gate.set()
    assert await asyncio.gather(first, second, third) == ["A", "B", "C"]
    assert rec.batches == [["a", "b"], ["c"]]


async def test_an_items_error_is_its_callers_alone() -> None:
    rec = Recorder()
    batches = GroupCommit(rec.flush, max_batch=10)
    ok, bad = await asyncio.gather(
        batches.submit("ok"), batches.submit("bad"), return_exceptions=True
    )
    assert ok == "OK" and isinstance(bad, ValueError)


async def test_a_name_in_a_running_flush_waits_for_the_next() -> None:
    rec = Recorder()
    rec.gate.clear()
    batches = GroupCommit(
        rec.flush, max_batch=10, max_in_flight=2, conflict=lambda i: i.split("-")[0]
    )
    calls = [asyncio.create_task(batches.submit(i)) for i in ("k-1", "k-2", "x-1", "k-3")]
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.gather(*calls)
    assert all(sum(i.startswith("k-") for i in b) <= 1 for b in rec.batches), rec.batches


async def test_a_caller_giving_up_does_not_cancel_the_write() -> None:
    rec = Recorder()
    rec.gate.clear()
    batches = GroupCommit(rec.flush, max_batch=10)
    first = asyncio.create_task(batches.submit("a"))
    second = asyncio.create_task(batches.submit("b"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the flush of both has run up to its write
    first.cancel()
    rec.gate.set()
    assert await second == "B"
    with pytest.raises(asyncio.CancelledError):
        await first
    await batches.drain()
    assert rec.batches == [["a", "b"]]


async def test_a_caller_giving_up_before_its_flush_runs_is_not_written() -> None:
    rec = Recorder()
    batches = GroupCommit(rec.flush, max_batch=10)
    first = asyncio.create_task(batches.submit("a"))
    second = asyncio.create_task(batches.submit("b"))
    await asyncio.sleep(0)  # both submitted, their flush not yet run
    first.cancel()
    assert await second == "B"
    await batches.drain()
    assert rec.batches == [["b"]]
