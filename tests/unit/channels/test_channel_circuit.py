"""A notification provider that keeps failing is not called for a cool-down (its circuit
opens), then once (the probe); the messages wait queued, none lost and none counted as
tried meanwhile; each change of state is logged once and shows in /metrics. The provider
is a real local HTTP server answering 503; the clock is moved, never slept on."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.channels.handlers.outgoing import CircuitBreaker
from services.channels.models import notifications
from shared.clock import ManualClock
from tests.conftest import at
from tests.unit.channels.conftest import T0, Platform, Receiver, eventually
from tests.unit.channels.test_channel_notifications import SMS, dispatched, notifying

COOLDOWN = 300  # s; the back-off's first retry is 30 s, so rows fall due while it lasts
OPENED = "notification provider circuit opened: not called until the cool-down ends"
HALF_OPEN = "notification provider circuit half-open: one probe"
REOPENED = "notification provider circuit opened again: the probe failed"
CLOSED = "notification provider circuit closed: the system answers again"


@pytest.fixture
async def guarded(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Platform]:
    async with notifying(
        tmp_path,
        sms_url=receiver.url_of(SMS),
        delivery_circuit_failures=3,
        delivery_circuit_cooldown_seconds=COOLDOWN,
    ) as platform:
        yield platform


async def circuit(platform: Platform) -> dict[str, float]:
    """The SMS provider's circuit in the channels process's own /metrics: state → value."""
    app = platform.services["channels"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://channels"
    ) as client:
        text = (await client.get("/metrics")).text
    found = re.findall(
        r'^hotline_channels_circuit\{sender="notifications",state="(\w+)",system="sms"\} (\S+)$',
        text,
        re.M,
    )
    return {state: float(value) for state, value in found}


async def attempts(platform: Platform) -> list[int]:
    return sorted(r.attempts for r in await platform.rows(notifications))


async def tried(platform: Platform, receiver: Receiver, calls: int) -> bool:
    """The provider has had ``calls`` calls and each is recorded in its row."""
    return len(receiver.received) >= calls and sum(await attempts(platform)) == len(
        receiver.received
    )


async def test_a_failing_provider_is_left_alone_for_the_cool_down_then_probed_once(
    guarded: Platform, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.channels")
    assert await circuit(guarded) == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    # six work orders queued at night (not urgent): they fall due together at 07:00
    guarded.clock.set(at("2026-03-02 23:00"))
    await guarded.publish(*(dispatched(f"TJ20260302{n:06d}") for n in range(701, 707)))
    await eventually(lambda: _queued(guarded, 6), "six notifications queued")
    receiver.statuses = [503] * 7
    guarded.clock.set(at("2026-03-03 07:00"))

    # all six go at once and fail: the third failure opens the circuit
    await eventually(lambda: tried(guarded, receiver, 6), "the first tries")
    assert await circuit(guarded) == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    # every row falls due again (30 s) while the circuit is open; past the cool-down, one
    # probe goes (and fails): without the breaker all six would have been tried again
    guarded.advance(seconds=COOLDOWN - 1)
    guarded.advance(seconds=2)
    await eventually(lambda: tried(guarded, receiver, 7), "the probe")
    assert len(receiver.received) == 7
    assert await attempts(guarded) == [1, 1, 1, 1, 1, 2]  # the others waited, untried
    assert await circuit(guarded) == {"closed": 0.0, "open": 1.0, "half_open": 0.0}

    # the next probe gets through: the circuit closes and the five waiting follow
    guarded.advance(seconds=COOLDOWN + 1)
    await eventually(lambda: _sent(guarded, 6), "all six sent")
    assert len(receiver.received) == 13 and receiver.answered.count(503) == 7
    texts = [body["content"] for body in receiver.taken(SMS)]
    assert len(texts) == len(set(texts)) == 6  # each once, none lost
    assert sum(await attempts(guarded)) == 13
    assert await circuit(guarded) == {"closed": 1.0, "open": 0.0, "half_open": 0.0}

    changes = [r.getMessage() for r in caplog.records if " circuit " in r.getMessage()]
    assert changes == [OPENED, HALF_OPEN, REOPENED, HALF_OPEN, CLOSED]
    opened = next(r for r in caplog.records if r.getMessage() == OPENED)
    assert opened.medium == "sms" and opened.cooldown_seconds == COOLDOWN  # type: ignore[attr-defined]


async def _queued(platform: Platform, n: int) -> bool:
    return len(await platform.rows(notifications)) == n


async def _sent(platform: Platform, n: int) -> bool:
    return [r.status for r in await platform.rows(notifications)] == ["sent"] * n


def test_each_system_has_its_own_circuit_a_lost_probe_goes_again_and_a_redelivery_at_once() -> None:
    clock = ManualClock(T0)
    breaker = CircuitBreaker(
        logging.getLogger("test"),
        "provider",
        "medium",
        clock,
        failures=2,
        cooldown=timedelta(seconds=60),
    )
    for _ in range(2):
        breaker.tried("sms", reached=False)
    breaker.tried("wechat", reached=False)
    assert breaker.blocked() == ["sms"]
    assert (breaker.admit("sms"), breaker.admit("wechat")) == (False, True)
    assert breaker.reopens_at() == T0 + timedelta(seconds=60)
    clock.advance(timedelta(seconds=60))
    assert breaker.blocked() == []
    assert [breaker.admit("sms") for _ in range(3)] == [True, False, False]  # one probe
    clock.advance(timedelta(seconds=60))  # its outcome never came (the sender failed)
    assert breaker.admit("sms") is True
    breaker.tried("sms", reached=True)  # an answer, even a refusal, closes it
    assert breaker.states() == {"sms": "closed", "wechat": "closed"}
    assert all(breaker.admit("sms") for _ in range(3))
    breaker.tried("wechat", reached=False)
    assert breaker.blocked() == ["wechat"]
    breaker.probe_now("wechat")  # a redelivery asked for by hand goes at once, as the probe
    assert [breaker.admit("wechat") for _ in range(2)] == [True, False]
