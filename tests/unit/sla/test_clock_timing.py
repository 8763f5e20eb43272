"""A clock's timing as it starts (``clock_timing``): a period of elapsed time (minutes,
hours) is worked out once a policy and reused for every start; what it gives is what the
calendar and the policy give for that start."""

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import AwareDatetime, TypeAdapter

from services.sla.domain import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    ClockKind,
    Policy,
)
from services.sla.handlers import clocks
from services.sla.handlers.clocks import clock_timing, new_clock
from services.sla.handlers.state import SlaState
from shared.calendar import SHANGHAI
from shared.policy import PolicyVersions

D, A, C = ClockKind.DISPATCH, ClockKind.ACCEPTANCE, ClockKind.COMPLETION


def _context(sla: SlaState | None = None) -> Any:
    return SimpleNamespace(extras={"sla": sla or SlaState()})


def _worked_out(
    sla: SlaState, kind: ClockKind, urgency: str, start: datetime, statutory: str | None
) -> dict[str, Any]:
    """The timing as the calendar and the policy give it for ``start`` alone: by a state
    that has worked out no plan (its calendar and policies those of ``sla``)."""
    fresh = SlaState()
    fresh.calendar, fresh.versions = sla.calendar, sla.versions
    timing = clock_timing(_context(fresh), kind, urgency, start, statutory)
    assert not fresh.elapsed or start >= datetime(1992, 1, 1, tzinfo=UTC)
    return timing


def _same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got == expected
    for name in ("deadline", "warn_at", "next_due_at"):  # the same instants in the same zones
        assert got[name].utcoffset() == expected[name].utcoffset()
        assert got[name].isoformat() == expected[name].isoformat()


CASES = [
    (kind, urgency, None)
    for kind in ClockKind
    for urgency in ("life_safety", "livelihood", "general")
] + [(C, "general", "3h"), (C, "livelihood", "90m"), (C, "general", "2wd"), (C, "general", "3d")]


@pytest.mark.parametrize(("kind", "urgency", "statutory"), CASES)
def test_every_start_is_timed_as_the_calendar_and_the_policy_time_it(
    kind: ClockKind, urgency: str, statutory: str | None
) -> None:
    sla = SlaState()
    ctx = _context(sla)
    rng = random.Random(f"{kind}{urgency}{statutory}")
    first = datetime(1992, 1, 1, tzinfo=UTC)
    starts = [first, first - timedelta(microseconds=1)]
    starts += [first + timedelta(seconds=rng.uniform(0, 45 * 365 * 86400)) for _ in range(300)]
    starts += [s.astimezone(SHANGHAI) for s in starts[:50]]  # starts in another zone
    for start in starts:
        _same(
            clock_timing(ctx, kind, urgency, start, statutory),
            _worked_out(sla, kind, urgency, start, statutory),
        )


def test_elapsed_periods_are_worked_out_once_a_policy() -> None:
    sla = SlaState()
    ctx = _context(sla)
    start = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    clock_timing(ctx, D, "general", start, None)
    assert list(sla.elapsed) == [(D, "general", None)]
    sla.calendar = None  # type: ignore[assignment]  # not read again for a 24h period
    later = clock_timing(ctx, D, "general", start + timedelta(seconds=1), None)
    assert later["deadline"] == start + timedelta(hours=24, seconds=1)
    assert later["warn_at"] == start + timedelta(hours=18, seconds=1)


def test_a_policy_in_force_later_times_its_own_clocks() -> None:
    sla = SlaState()
    ctx = _context(sla)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    settings = {
        **DEFAULT_POLICY,
        "periods": {
            **DEFAULT_POLICY["periods"],
            "dispatch": {"life_safety": "5m", "livelihood": "5m", "general": "12h"},
        },
        "warning_fraction": 0.5,
    }
    sla.versions = PolicyVersions(
        [Policy(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY), Policy(later, settings)]
    )
    before = datetime(2026, 12, 31, 12, tzinfo=UTC)
    assert clock_timing(ctx, D, "general", before, None)["deadline"] == before + timedelta(hours=24)
    after = later + timedelta(hours=1)
    timing = clock_timing(ctx, D, "general", after, None)
    assert timing["period"] == "12h"
    assert timing["deadline"] == after + timedelta(hours=12)
    assert timing["warn_at"] == after + timedelta(hours=6)
    again = clock_timing(ctx, D, "general", before + timedelta(minutes=1), None)
    assert again["deadline"] == before + timedelta(hours=24, minutes=1)
    assert again["warn_at"] == before + timedelta(hours=18, minutes=1)


def test_a_start_before_1992_is_timed_in_local_time() -> None:
    """Shanghai kept summer time until 1991: 24 hours from a start the night summer time
    ended are 25 hours of elapsed time in local time, as the calendar counts them."""
    sla = SlaState()
    ctx = _context(sla)
    clock_timing(ctx, D, "general", datetime(2026, 1, 1, tzinfo=UTC), None)  # a plan known
    start = datetime(1991, 9, 14, 12, tzinfo=SHANGHAI).astimezone(UTC)
    timing = clock_timing(ctx, D, "general", start, None)
    _same(timing, _worked_out(sla, D, "general", start, None))
    assert timing["deadline"] - start == timedelta(hours=25)


def _run_clock(
    ctx: Any,
    ticket_id: str,
    kind: ClockKind,
    start: datetime,
    timings: dict[Any, Any] | None = None,
) -> dict[str, Any]:
    """A general ticket's first clock of ``kind`` starting at ``start`` (one of a run's,
    given its ``timings``)."""
    return new_clock(
        ctx,
        ticket_id=ticket_id,
        kind=kind,
        round_=1,
        dispatch_no=1,
        urgency="general",
        started_at=start,
        unit_id=None,
        district="hp",
        timings=timings,
    )


def test_new_clock_rows_of_a_run_are_timed_alike() -> None:
    ctx = _context()
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    timings: dict[Any, Any] = {}
    rows = [
        _run_clock(ctx, f"T{i}", kind, start + timedelta(milliseconds=i), timings)
        for i in range(3)
        for kind in (D, A)
    ]
    for row in rows:
        expected = _worked_out(ctx.extras["sla"], row["kind"], "general", row["started_at"], None)
        assert {k: row[k] for k in expected} == expected


def test_new_clocks_are_timed_by_the_policy_in_force_at_their_start() -> None:
    """A plan worked out under one policy times only the starts that policy is in force
    for (``PolicyVersions.in_force``: the newest effective at the start, the first before
    it), from 1992 on: starts a microsecond either side of each version's effective time,
    before the first and before 1992, in UTC and in Shanghai time, in any order, are
    timed as the calendar and their own policy time them (the same instants)."""
    first = datetime(2026, 1, 1, tzinfo=UTC)
    second = datetime(2027, 1, 1, 8, tzinfo=SHANGHAI)
    third = datetime(2027, 6, 1, tzinfo=UTC)

    def policy(effective_from: datetime, general: str, fraction: float) -> Policy:
        periods = {
            **DEFAULT_POLICY["periods"],
            "dispatch": {**DEFAULT_POLICY["periods"]["dispatch"], "general": general},
        }
        return Policy(
            effective_from, {**DEFAULT_POLICY, "periods": periods, "warning_fraction": fraction}
        )

    sla = SlaState()
    sla.versions = PolicyVersions(
        [policy(first, "24h", 0.75), policy(second, "12h", 0.5), policy(third, "90m", 0.25)]
    )
    ctx = _context(sla)
    tick = timedelta(microseconds=1)
    starts = [datetime(1991, 12, 31, 23, tzinfo=UTC), datetime(1992, 1, 1, tzinfo=UTC) - tick]
    starts += [datetime(1992, 1, 1, tzinfo=UTC), first - tick]
    for at in (first, second, third):
        starts += [at - tick, at, at + tick, at + timedelta(days=30)]
    starts += [s.astimezone(SHANGHAI) for s in starts]
    rng = random.Random(7)
    for start in rng.sample(starts, len(starts)) + starts:
        row = _run_clock(ctx, "T1", D, start)
        expected = _worked_out(sla, D, "general", start, None)
        assert {k: row[k] for k in expected} == expected, start
        assert row["started_at"] is start


def test_a_runs_clocks_starting_at_one_instant_are_timed_once_in_any_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's acceptance clocks (one working day: not elapsed time) starting at one instant,
    given in pydantic's zone (as a decoded event's time is), in Shanghai time or in UTC,
    share one timing worked out once, kept by the start in UTC; each is the calendar's
    timing of that start."""
    start = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    decoded = TypeAdapter(AwareDatetime).validate_json(f'"{start.isoformat()}"')
    assert decoded.tzinfo is not UTC and decoded == start
    worked: list[datetime] = []

    def timing(ctx: Any, kind: ClockKind, urgency: str, at: datetime, period: Any) -> Any:
        worked.append(at)
        return clock_timing(ctx, kind, urgency, at, period)

    monkeypatch.setattr(clocks, "clock_timing", timing)
    ctx = _context()
    timings: dict[Any, Any] = {}
    rows = [
        _run_clock(ctx, f"T{i}", A, at, timings)
        for i, at in enumerate([decoded, start.astimezone(SHANGHAI), start, decoded])
    ]
    assert worked == [decoded]
    assert list(timings) == [(A, "general", start, None)]
    assert all(key[2].tzinfo is UTC for key in timings)
    expected = _worked_out(ctx.extras["sla"], A, "general", start, None)
    for row in rows:
        assert row["deadline"] == expected["deadline"]
        assert row["warn_at"] == expected["warn_at"]
        assert row["next_due_at"] == expected["next_due_at"]
