"""The controllable clock's sleepers wake by real time just past their time, not up to it
(on uvloop the rest of a wait that ended a fraction of a millisecond early was waited for
in a spin of waits rounded to nothing)."""

from __future__ import annotations

from datetime import timedelta

from shared.clock import TIMER_SLACK_SECONDS, OffsetClock


def test_a_sleeper_waits_a_little_past_its_time_not_up_to_it() -> None:
    clock = OffsetClock()
    when = clock.now() + timedelta(seconds=1)
    # whole milliseconds on uvloop: a timer set for exactly the time left may fire just
    # before it, and the rest (under a millisecond) was waited for in a spin
    assert clock._real_wait(when) > 1.0
    assert clock._real_wait(clock.now() - timedelta(seconds=1)) == TIMER_SLACK_SECONDS
