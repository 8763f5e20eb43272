"""The SLA service as a whole, embedded: clocks start and stop on ticket events, and an
unmet deadline produces exactly one sla.overdue — moving the clock, never sleeping."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from services.sla.handlers import scanner
from shared.events import TicketAccepted
from tests.conftest import (
    Counted,
    counted_due_loop,
    recorded_idle_waits,
    waits_double_then_start_over,
)
from tests.unit.sla.conftest import T0, Harness, dispatched, registered, settle, until


async def test_an_unmet_acceptance_deadline_produces_exactly_one_overdue(
    harness: Harness,
) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        await until(
            lambda: len([e for e in harness.seen if e.type == "sla.deadline_set"]) == 2,
            "dispatch and acceptance clocks",
        )
        harness.clock.advance(timedelta(minutes=15))  # 1 min before the 15-min deadline
        await settle(ctx)
        assert harness.overdue("TJ1") == []
        harness.clock.advance(timedelta(minutes=1, seconds=1))
        await until(lambda: len(harness.overdue("TJ1")) == 1, "sla.overdue")
        harness.clock.advance(timedelta(hours=5))
        await settle(ctx)
        [overdue] = harness.overdue("TJ1")
        assert overdue.payload["clock"] == "acceptance"
        assert overdue.payload["late_seconds"] == pytest.approx(1.0)


async def test_a_met_deadline_produces_no_overdue(harness: Harness) -> None:
    async with harness.running() as ctx:
        accepted_at = T0 + timedelta(minutes=10)
        await harness.bus.publish(
            [
                registered("TJ2"),
                dispatched("TJ2"),
                TicketAccepted(
                    ticket_id="TJ2", unit_id="city-gas", accepted_at=accepted_at
                ).envelope(producer="dispatch", occurred_at=accepted_at),
            ]
        )
        harness.clock.advance(timedelta(minutes=20))
        await settle(ctx)
        assert harness.overdue("TJ2") == []
        harness.clock.advance(timedelta(hours=2))  # completion: 2 h from acceptance
        await until(lambda: len(harness.overdue("TJ2")) == 1, "completion overdue")
        assert harness.overdue("TJ2")[0].payload["clock"] == "completion"


async def test_a_restart_loses_no_deadline(harness: Harness) -> None:
    async with harness.running() as ctx:
        await harness.bus.publish([registered("TJ3"), dispatched("TJ3")])
        await settle(ctx)
    # down while the deadline passes
    harness.clock.advance(timedelta(hours=1))
    async with harness.running():
        await until(lambda: len(harness.overdue("TJ3")) == 1, "overdue after restart")
    async with harness.running() as ctx:  # and a further restart does not repeat it
        await settle(ctx)
        assert len(harness.overdue("TJ3")) == 1


async def test_the_same_event_delivered_twice_starts_one_clock(harness: Harness) -> None:
    async with harness.running() as ctx:
        twice, dispatched_twice = registered("TJ4"), dispatched("TJ4")
        await harness.bus.publish([twice, twice, dispatched_twice, dispatched_twice])
        # the same fact re-sent under a new event id (a producer retry) is harmless too
        await harness.bus.publish([dispatched("TJ4")])
        await settle(ctx)
        set_events = [e for e in harness.seen if e.type == "sla.deadline_set"]
        assert [e.payload["clock"] for e in set_events] == ["dispatch", "acceptance"]
        harness.clock.advance(timedelta(hours=1))
        await until(lambda: len(harness.overdue("TJ4")) == 1, "one overdue")
        await settle(ctx)
        assert len(harness.overdue("TJ4")) == 1


class CountedWake(asyncio.Event):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def set(self) -> None:
        self.count += 1
        super().set()


async def test_a_clock_due_later_than_the_scanners_next_look_does_not_wake_it(
    harness: Harness,
) -> None:
    """Waking the scanner costs a query; a clock days away waits for its next look,
    one due sooner than that wakes it at once."""
    from services.sla.handlers.state import state

    async with harness.running() as ctx:
        sla = state(ctx)
        await until(lambda: sla.planned_wake is not None, "the scanner to wait")
        sla.wake = wake = CountedWake()
        await harness.bus.publish([registered("TJ8", urgency="general")])  # due in 24 h
        await until(lambda: harness.emitted("sla.deadline_set", "TJ8") != [], "the clock")
        assert wake.count == 0
        long_ago = T0 - timedelta(days=3)
        await harness.bus.publish([registered("TJ9", urgency="general", when=long_ago)])
        await until(lambda: wake.count == 1, "a wake-up for a clock already due")
        await until(lambda: harness.overdue("TJ9") != [], "its overdue")


async def test_an_idle_scanner_only_looks_and_acts_once_something_is_due(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, batches = counted_due_loop(monkeypatch, scanner, "next_due_at", "act_on_due", 0.01)
    async with harness.running():
        await until(lambda: looks.calls >= 5, "the idle polls")
        assert batches.calls == 0
        await harness.bus.publish([registered("TJ10"), dispatched("TJ10")])
        await until(lambda: harness.emitted("sla.deadline_set", "TJ10") != [], "the clocks")
        harness.clock.advance(timedelta(hours=1))
        await until(lambda: len(harness.overdue("TJ10")) == 1, "its overdue")
        assert batches.calls >= 1


async def test_a_moved_clock_wakes_a_scanner_waiting_for_its_idle_look(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's demo and the browser tests move a controllable clock: a scanner waiting
    for its idle look (here a minute of real time away) looks as soon as the clock passes
    it, and acts on a clock it had not read (one due later than that look did not wake it)."""
    looks, _ = counted_due_loop(monkeypatch, scanner, "next_due_at", "act_on_due", 60.0)
    async with harness.running():
        await until(lambda: looks.calls == 1, "the first look")
        await harness.bus.publish([registered("TJ11"), dispatched("TJ11")])
        await until(lambda: harness.emitted("sla.deadline_set", "TJ11") != [], "the clocks")
        assert looks.calls == 1
        harness.clock.advance(timedelta(hours=1))
        await until(lambda: len(harness.overdue("TJ11")) == 1, "its overdue")


async def test_clocks_due_but_locked_by_another_instance_do_not_make_the_scanner_spin(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, batches = counted_due_loop(monkeypatch, scanner, "next_due_at", "act_on_due", 60.0)
    batches.returns = 0  # every due clock is another instance's
    async with harness.running() as ctx:
        await until(lambda: looks.calls == 1, "the first look")
        long_ago = T0 - timedelta(days=3)  # a clock already due wakes the scanner
        await harness.bus.publish([registered("TJ11", urgency="general", when=long_ago)])
        await until(lambda: batches.calls == 1, "a try at the due clock")
        await settle(ctx)
        assert batches.calls == 1  # then it waits for the idle poll (or a wake-up)
        assert looks.calls == 2


async def test_an_idle_scanner_looks_less_and_less_often_until_it_acts(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each look that finds nothing doubles the wait for the next, up to the most; acting
    starts over (an idle SLA process woke twice a second for this)."""
    waits = recorded_idle_waits(monkeypatch, scanner)

    async def a_clock_already_due() -> None:
        long_ago = T0 - timedelta(days=3)
        await harness.bus.publish([registered("TJ12", urgency="general", when=long_ago)])
        await until(lambda: harness.overdue("TJ12") != [], "its overdue")

    async with harness.running():
        await waits_double_then_start_over(waits, until, a_clock_already_due)


async def test_a_clock_another_instance_started_is_acted_on_at_its_deadline(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in this process announces another instance's clock: the backed-off scanner
    reads it at its next look, minutes before it falls due, and then sleeps until it."""
    from services.sla.handlers.state import SlaState

    waits = recorded_idle_waits(monkeypatch, scanner)
    looks = Counted(monkeypatch, scanner, "next_due_at")
    async with harness.running():
        await until(lambda: waits[-2:] == [0.04, 0.04], "the scanner at its longest wait")
        monkeypatch.setattr(SlaState, "wake_for", lambda self, due: False)  # not woken
        await harness.bus.publish([registered("TJ13"), dispatched("TJ13")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ13")) == 2, "the clocks")
        seen = looks.calls
        await until(lambda: looks.calls > seen, "a look after the clocks were stored")
        clocks = harness.emitted("sla.deadline_set", "TJ13")
        [acceptance] = [e for e in clocks if e.payload["clock"] == "acceptance"]
        harness.clock.set(datetime.fromisoformat(acceptance.payload["deadline"]))
        await until(lambda: harness.overdue("TJ13") != [], "its overdue")
        [overdue] = harness.overdue("TJ13")
        assert overdue.payload["clock"] == "acceptance"
        assert overdue.payload["late_seconds"] == 0
