"""The events evaluation takes (issue 12: only the events a service needs reach it): of
the SLA clocks, the scores ask only whether one went overdue, so ``sla.deadline_set`` (two
or three a ticket, most clocks never late) is neither handled nor recorded; an overdue
clock's row begins with its ``sla.overdue``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from services.evaluation.models import sla_clocks
from tests.unit.evaluation.conftest import (
    T0,
    Evaluation,
    accepted,
    deadline_set,
    dispatched,
    overdue,
    registered,
)

W = "city-water"


async def test_deadline_set_is_not_taken_and_an_overdue_clock_still_counts_late(
    service: Evaluation,
) -> None:
    s, m = T0, timedelta(minutes=1)
    clocks = [
        deadline_set("K", "dispatch", s, s + 30 * m, None),
        deadline_set("K", "acceptance", s + 5 * m, s + 35 * m, W),
        deadline_set("L", "acceptance", s + 5 * m, s + 35 * m, W),
    ]
    late = overdue("K", "acceptance", s + 35 * m)
    await service.feed(
        registered("K", s), registered("L", s), dispatched("K", s + 5 * m),
        dispatched("L", s + 5 * m), *clocks, late, accepted("K", s + 40 * m),
        accepted("L", s + 10 * m),
    )  # fmt: skip
    await service.bus.settle()

    inbox = service.ctx.db.inbox
    async with service.ctx.db.engine.connect() as conn:
        taken = set((await conn.execute(select(inbox.c.event_id))).scalars())
        rows = (await conn.execute(select(sla_clocks))).mappings().all()
    assert not taken & {str(e.event_id) for e in clocks}
    assert str(late.event_id) in taken
    assert [(r["ticket_id"], r["clock"], r["unit_key"]) for r in rows] == [("K", "acceptance", W)]
    assert rows[0]["overdue_at"] is not None

    r = await service.call("GET", f"/scores/{W}?from=2026-03-01&to=2026-03-31&explain=true")
    assert r.status_code == 200, r.text
    [water] = r.json()["data"]
    outcomes = {t["ticket_id"]: t["outcome"] for t in water["on_time_acceptance"]["tickets"]}
    assert outcomes == {"K": "late", "L": "on_time"}
