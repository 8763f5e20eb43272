"""A SQLite connection the pool stops by force while a graceful close is under way (a task
cancelled while it held the connection) lets that close end: the event loop's shutdown,
which cancels it once, no longer waits for it forever (shared/db.py ``_stop_once``)."""

from __future__ import annotations

import asyncio

import aiosqlite

import shared.db  # noqa: F401 - the fix is made where the engines are


async def test_a_graceful_close_ends_after_the_connection_was_stopped_by_force() -> None:
    conn = await aiosqlite.connect(":memory:")
    closing = asyncio.ensure_future(conn.close())  # the pool's shielded graceful close
    await asyncio.sleep(0)  # it has handed its close to the connection's thread
    conn.stop()  # the cancelled task's forced stop: the thread ends
    closing.cancel()  # the loop's shutdown cancels every task once
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the close waits forever for a thread that has ended"
    # the thread answers its last jobs before it ends: let it, while this loop still runs
    await asyncio.to_thread(conn._thread.join, 5)  # noqa: SLF001
