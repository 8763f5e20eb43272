"""The hotspot counter (Art 27): whether a new ticket's window holds the threshold,
judged from a track's latest registration times instead of a re-read of the window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.evaluation.domain import counted_recent, window_reaches_threshold
from services.evaluation.handlers import monitoring

T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def minutes(*values: float) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in values]


def test_the_tenth_ticket_within_the_hour_reaches_the_threshold() -> None:
    recent = minutes(*range(0, 45, 5))  # 9 earlier tickets, minutes 0..40
    assert window_reaches_threshold(recent, 9, T0 + timedelta(minutes=45), HOUR, 10) is True
    assert window_reaches_threshold(recent[1:], 8, T0 + timedelta(minutes=45), HOUR, 10) is False


def test_tickets_older_than_the_window_do_not_count() -> None:
    recent = minutes(*range(0, 63, 7))  # 9 tickets over 56 minutes
    assert window_reaches_threshold(recent, 9, T0 + timedelta(minutes=63), HOUR, 10) is False


def test_a_complete_short_counter_decides_and_an_incomplete_one_defers() -> None:
    assert window_reaches_threshold(minutes(1, 2), 2, T0 + timedelta(minutes=3), HOUR, 3) is True
    assert window_reaches_threshold(minutes(1), 1, T0 + timedelta(minutes=3), HOUR, 3) is False
    # the threshold was raised above what was kept while older tickets exist: count
    assert window_reaches_threshold(minutes(1), 5, T0 + timedelta(minutes=3), HOUR, 3) is None


def test_a_ticket_older_than_the_newest_counted_defers_to_a_count() -> None:
    assert window_reaches_threshold(minutes(10), 1, T0 + timedelta(minutes=5), HOUR, 2) is None


def test_the_counter_keeps_the_latest_threshold_times_in_order() -> None:
    kept = counted_recent(minutes(5, 1, 9), T0 + timedelta(minutes=3), 3)
    assert kept == minutes(3, 5, 9)


def test_a_batch_keeps_the_counter_as_counted_recent_does_with_each_time_s_text() -> None:
    """The set-based tally's counter (``monitoring._counted``): the same times as
    ``counted_recent`` for tickets in order and late ones, counters shorter and longer than
    the threshold; each time kept as the text it was stored as, a new one as its ISO text."""
    rng = random.Random(27)
    for _ in range(400):
        threshold = rng.choice([1, 2, 3, 5, 10])
        texts = sorted(
            (T0 + timedelta(seconds=rng.randrange(7200))).isoformat(timespec="milliseconds")
            for _ in range(rng.randrange(threshold + 3))
        )
        recent = [datetime.fromisoformat(t) for t in texts]
        written = {id(r): t for r, t in zip(recent, texts, strict=True)}  # a time's text
        for _ in range(rng.randrange(1, 12)):
            at = T0 + timedelta(seconds=rng.randrange(-600, 9000))
            if recent and rng.random() < 0.2:  # at the newest's time exactly
                at = recent[-1] + timedelta(0)
            expected = counted_recent(recent, at, threshold)
            written[id(at)] = at.isoformat()
            recent, texts = monitoring._counted(recent, texts, at, threshold)
            assert recent == expected
            assert texts == [written[id(r)] for r in recent]
