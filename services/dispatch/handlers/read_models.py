"""Facts other services tell dispatch: flagged tickets (Art 27) and the SLA's deadlines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from services.dispatch.models import (
    assignments,
    early_dispatch_deadlines,
    flags,
)
from shared.db import (
    UnitOfWork,
    in_list,
    insert_ignoring_duplicates,
    pair_of,
    update_many,
    upsert_many,
)
from shared.events import (
    DeadlineSet,
    Envelope,
    TicketFlagged,
    parse_payload,
)
from shared.logging import Outage
from shared.service import ServiceContext

log = logging.getLogger("hotline.dispatch")

# A deadline event belongs to the current dispatch if its clock started at (or after) it.
CLOCK_TOLERANCE = timedelta(seconds=1)


# ---- facts from other services --------------------------------------------------------


async def on_ticket_flagged(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """Sensitive content (Art 27): to the head of the unit's inbox."""
    event = parse_payload(envelope)
    assert isinstance(event, TicketFlagged)
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, flags).values(
            ticket_id=event.ticket_id, flagged_at=event.flagged_at, keywords=event.keywords
        )
    )
    await uow.conn.execute(
        update(assignments).where(assignments.c.ticket_id == event.ticket_id).values(flagged=True)
    )


DEADLINE_COLUMNS = {
    "dispatch": "dispatch_deadline",
    "acceptance": "acceptance_deadline",
    "completion": "completion_deadline",
}


def deadline_values(event: DeadlineSet, row: Any) -> dict[str, Any] | None:
    """What the SLA's deadline changes on the assignment ``row``: nothing unless it
    belongs to the clock now running."""
    if row is None or event.round != row.round:
        return None
    started = {"acceptance": row.dispatched_at, "completion": row.accepted_at}.get(event.clock)
    if event.clock != "dispatch" and (
        started is None or event.started_at < started - CLOCK_TOLERANCE
    ):
        return None  # a clock of an earlier dispatch
    values: dict[str, Any] = {DEADLINE_COLUMNS[event.clock]: event.deadline}
    if event.clock != "dispatch":
        values["deadline_source"] = "sla"
    return values


# what ``deadline_values`` reads of an assignment
DEADLINE_READ = (
    assignments.c.ticket_id,
    assignments.c.round,
    assignments.c.dispatched_at,
    assignments.c.accepted_at,
)


# ---- deadlines heard of before the ticket ----------------------------------------------
# The SLA starts the dispatch clock from the same ticket.registered that opens the work
# order here, and its sla.deadline_set travels on another topic: it may come first. It then
# waits in ``early_dispatch_deadlines`` for the registration, which takes it. (The other
# clocks start from dispatch's own events, so their deadlines never precede the work order:
# one about a ticket dispatch does not know changes nothing, as before.)


def is_early(event: DeadlineSet, row: Any) -> bool:
    """Whether ``event`` must wait for its ticket's registration (``row``: the work order)."""
    return row is None and event.clock == "dispatch"


def early_row(event: DeadlineSet) -> dict[str, Any]:
    return {"ticket_id": event.ticket_id, "round": event.round, "deadline": event.deadline}


async def keep_early(uow: UnitOfWork, events: list[DeadlineSet]) -> None:
    """The dispatch deadlines of tickets not registered here yet, kept for their
    registration; a later one of the same ticket and round replaces an earlier one, as it
    would replace it on the work order."""
    rows = [early_row(e) for e in events]
    table, key = early_dispatch_deadlines, ["ticket_id", "round"]
    await upsert_many(uow.conn, table, key, rows, ["deadline"])


async def take_early(conn: Any, ticket_ids: Iterable[str]) -> dict[str, datetime]:
    """The dispatch deadlines that came before the registrations of ``ticket_ids``, taken
    (removed): by ticket, that of the first round, the one a registration opens (one of
    another round is not its clock's and goes without effect)."""
    postgres = conn.dialect.name == "postgresql"
    table = early_dispatch_deadlines
    taken = await conn.execute(
        delete(table)
        .where(in_list(table.c.ticket_id, "ids", postgres=postgres))
        .returning(table.c.ticket_id, table.c.round, table.c.deadline),
        {"ids": list(ticket_ids)},
    )
    return {r.ticket_id: r.deadline for r in taken if r.round == 1}


# Two instances of dispatch may hold a ticket's partitions of the two topics: a deadline kept
# in one transaction while another, not yet committed, opens the work order (and finds
# nothing to take) is left waiting beside the work order. What a registration has not
# taken by the time its work order is there is settled here, a few seconds later.
SETTLE_SECONDS = 5.0
SETTLE_BATCH = 500
_NOT_SET = (assignments.c.dispatch_deadline.is_(None),)  # a later deadline stays


async def settle_stranded(ctx: ServiceContext) -> int:
    """Dispatch deadlines left waiting beside their work orders go onto them (those of the
    work order's round, if it has none yet: a later one it has stays) and are removed;
    returns how many were found."""
    early = early_dispatch_deadlines
    async with ctx.db.unit_of_work() as uow:
        stranded = (
            await uow.conn.execute(
                select(
                    early.c.ticket_id,
                    early.c.round,
                    early.c.deadline,
                    assignments.c.round.label("current_round"),
                )
                .join(assignments, assignments.c.ticket_id == early.c.ticket_id)
                .limit(SETTLE_BATCH)
            )
        ).all()
        if not stranded:
            return 0
        values = [
            {"ticket_id": r.ticket_id, "dispatch_deadline": r.deadline}
            for r in stranded
            if r.round == r.current_round
        ]
        await update_many(uow.conn, assignments, ["ticket_id"], values, *_NOT_SET)
        key = (early.c.ticket_id, early.c.round)
        pairs = [(r.ticket_id, r.round) for r in stranded]
        await uow.conn.execute(delete(early).where(pair_of(uow.conn, key, pairs)))
    log.info("stranded dispatch deadlines settled", extra={"deadlines": len(stranded)})
    return len(stranded)


async def early_deadline_settler(ctx: ServiceContext) -> None:
    """``settle_stranded`` every ``SETTLE_SECONDS`` (a read of an empty table, mostly)."""
    outage = Outage(log, "settling stranded dispatch deadlines")
    while True:
        try:
            await settle_stranded(ctx)
            outage.ok()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged when it starts and when it ends
            await asyncio.sleep(outage.failed())
            continue
        await asyncio.sleep(SETTLE_SECONDS)


async def on_deadline_set(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """The SLA's deadline replaces ours, if it belongs to the clock now running; a
    dispatch deadline that came before its ticket waits for the registration."""
    event = parse_payload(envelope)
    assert isinstance(event, DeadlineSet)
    row = (
        await uow.conn.execute(
            select(*DEADLINE_READ).where(assignments.c.ticket_id == event.ticket_id)
        )
    ).first()
    if is_early(event, row):
        await keep_early(uow, [event])
        return
    values = deadline_values(event, row)
    if values is None:
        return
    await uow.conn.execute(
        update(assignments).where(assignments.c.ticket_id == event.ticket_id).values(**values)
    )
