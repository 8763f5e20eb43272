"""The channels' background loops through a database outage: each logs once when it starts
and once when it ends (with how many tries failed), never once per try, and outlives it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.channels.handlers import wechat
from services.channels.handlers.outgoing import run_sender, wake_of
from shared.clock import ManualClock
from tests.unit.channels.conftest import T0


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("hotline.channels") and r.levelno >= logging.WARNING
    ]


async def until(probe: Any, what: str, poke: Any = None) -> None:
    deadline = time.monotonic() + 10
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if poke is not None:
            poke()
        await asyncio.sleep(0.01)


async def test_a_sender_through_a_database_outage_logs_its_start_and_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    ctx: Any = SimpleNamespace(clock=ManualClock(T0), extras={})
    tries = 0

    async def send_due() -> bool:
        return False

    async def next_due() -> None:
        nonlocal tries
        tries += 1
        if tries <= 5:
            raise ConnectionRefusedError("the database is down")

    task = asyncio.create_task(run_sender(ctx, "test", send_due, next_due))
    try:
        await until(lambda: tries >= 7, "seven rounds", poke=wake_of(ctx, "test").event.set)
    finally:
        task.cancel()
    assert [r.getMessage() for r in warnings(caplog)] == [
        "sender failed; retrying with back-off until it works",
        "sender works again",
    ]
    assert warnings(caplog)[1].failed_tries == 5  # type: ignore[attr-defined]


async def test_an_idle_sender_only_looks_and_claims_once_a_row_is_due() -> None:
    clock = ManualClock(T0)
    ctx: Any = SimpleNamespace(clock=clock, extras={})
    due_at: datetime | None = None
    claimed_elsewhere = False
    looks = claims = 0

    async def next_due() -> datetime | None:
        nonlocal looks
        looks += 1
        return due_at

    async def send_due() -> bool:
        nonlocal claims, due_at
        claims += 1
        if claimed_elsewhere or due_at is None or due_at > clock.now():
            return False
        due_at = None
        return True

    wake = wake_of(ctx, "test").event
    task = asyncio.create_task(run_sender(ctx, "test", send_due, next_due))
    try:
        await until(lambda: looks >= 5, "five looks", poke=wake.set)
        assert claims == 0
        due_at = T0 + timedelta(minutes=1)
        await until(lambda: looks >= 6, "a look at the new row", poke=wake.set)
        clock.advance(timedelta(minutes=1))
        await until(lambda: due_at is None, "the row sent")
        assert claims == 1
        # a row due, but claimed by another instance: one try, then the idle poll
        due_at, claimed_elsewhere, seen = T0, True, looks
        wake.set()
        await until(lambda: claims == 2, "a try at the row")
        for _ in range(5):
            await asyncio.sleep(0.01)
        assert (claims, looks) == (2, seen + 1)
    finally:
        task.cancel()


async def test_the_wechat_retry_loop_outlives_a_database_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    tries = 0

    class Nothing:
        async def execute(self, query: Any) -> Any:
            return SimpleNamespace(all=lambda: [])

    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[Any]:
        nonlocal tries
        tries += 1
        if tries <= 3:
            raise ConnectionRefusedError("the database is down")
        yield SimpleNamespace(conn=Nothing())

    ctx: Any = SimpleNamespace(
        clock=ManualClock(T0), extras={}, db=SimpleNamespace(unit_of_work=unit_of_work)
    )
    task = asyncio.create_task(wechat.retry_pending(ctx))
    try:
        await until(lambda: tries >= 4 or task.done(), "the loop past the outage")
        assert not task.done(), "the loop died with the database"
    finally:
        task.cancel()
    assert [r.getMessage() for r in warnings(caplog)] == [
        "wechat registration retries failed; retrying with back-off until it works",
        "wechat registration retries works again",
    ]
