"""A loop waiting for an event with a timeout stops when it is cancelled, even when the
event is set in the same instant (asyncio.wait_for on Python 3.11 loses that cancel)."""

from __future__ import annotations

import asyncio

import pytest

from shared.aio import IdlePoll, wait_set


async def test_the_event_set_in_time_is_reported() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5) is True


async def test_a_timeout_is_reported_as_false() -> None:
    assert await wait_set(asyncio.Event(), 0.01) is False


async def test_a_cancel_arriving_with_the_event_is_never_swallowed() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:  # a relay-like loop: only a cancel ends it
            rounds += 1
            await wait_set(event, 10)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()  # in the same instant as the event
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert rounds == 1


def test_an_idle_poll_doubles_its_wait_up_to_the_most_and_starts_over_on_work() -> None:
    poll = IdlePoll(0.5, 4.0)
    assert [poll.wait() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    poll.found()
    assert [poll.wait() for _ in range(2)] == [0.5, 1.0]


def test_an_idle_poll_whose_most_is_below_its_first_keeps_the_first() -> None:
    poll = IdlePoll(60.0, 8.0)
    assert [poll.wait() for _ in range(3)] == [60.0, 60.0, 60.0]
