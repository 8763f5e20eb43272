"""The timeline reads events of one instant in the order they happen: a clock falls overdue,
then it is escalated (RULES.md §4)."""

from __future__ import annotations

from gateway.timeline import _order


def test_at_one_instant_overdue_comes_before_escalated() -> None:
    same = "2026-03-02T01:00:00Z"
    events = [
        {"occurred_at": same, "type": "sla.escalated"},
        {"occurred_at": same, "type": "sla.overdue"},
        {"occurred_at": "2026-03-02T00:59:00Z", "type": "sla.warning"},
    ]
    assert [e["type"] for e in sorted(events, key=_order)] == [
        "sla.warning",
        "sla.overdue",
        "sla.escalated",
    ]
