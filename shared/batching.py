"""Group commit: concurrent requests' writes shared by one statement or transaction.

Each caller ``submit``s its item and awaits its own result. A flush is started at once
when fewer than ``max_in_flight`` flushes are running (an idle service adds no wait) and
takes its items when it first runs, at the event loop's next turn: the items submitted
meanwhile (requests read in the same turn of the loop) go with it. While flushes run,
newly submitted items gather and the next flush takes up to ``max_batch`` of them. So
under load one round trip serves many requests, and alone a request is written as soon
as it comes.

The flush function gets the items and returns one result per item, in order: a value, or
an exception that only that item's caller raises. An exception escaping the flush is
raised by every caller of the batch. A caller that gives up (its request cancelled) does
not cancel the flush: the other items of the batch are written all the same."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_batch: int = 64,
        max_in_flight: int = 1,
        conflict: Callable[[T], Hashable | None] | None = None,
        name: str = "group commit",
    ) -> None:
        """``conflict`` names what two items must not share within the running flushes
        (e.g. an Idempotency-Key): an item whose name is taken waits for a later flush."""
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight are at least 1")
        self._flush = flush
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._conflict = conflict
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._busy: set[Hashable] = set()
        self._in_flight = 0  # flushes started, taken their items or about to
        self._starting = False  # a flush started has not yet taken its items
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0  # how many flushes ran (tests and metrics read it)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start()
        return await future

    async def drain(self) -> None:
        """Wait for every running and pending flush (a stopping service)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        """Start a flush if items wait and one may run; it takes them when it first runs
        (``_run``), with those submitted until then, so one is started at a time."""
        if self._pending and not self._starting and self._in_flight < self.max_in_flight:
            self._starting = True
            self._in_flight += 1
            task = asyncio.create_task(self._run(), name=self.name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        left: list[tuple[T, asyncio.Future[R]]] = []
        for entry in self._pending:
            item, future = entry
            if future.done():  # its caller gave up before the flush: nothing to write
                continue
            if len(batch) >= self.max_batch:
                left.append(entry)
                continue
            name = self._conflict(item) if self._conflict is not None else None
            if name is not None:
                if name in self._busy:
                    left.append(entry)
                    continue
                self._busy.add(name)
            batch.append(entry)
        self._pending = left
        return batch

    async def _run(self) -> None:
        self._starting = False
        batch = self._take()
        if not batch:  # every pending item waits for a running flush's conflict (or gave up)
            self._in_flight -= 1
            return
        self._start()  # the items left over, if another flush may run
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch is told
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.flushes += 1
            self._in_flight -= 1
            if self._conflict is not None:
                for item, _ in batch:
                    name = self._conflict(item)
                    if name is not None:
                        self._busy.discard(name)
            self._start()
