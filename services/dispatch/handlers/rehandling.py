"""Re-handling (再次办理, Art 14): the evaluation side sends a ticket back once."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from services.dispatch.handlers.common import (
    PRODUCER,
    load_for_update,
    write_dispatch,
)
from services.dispatch.models import (
    assignments,
)
from shared.db import UnitOfWork
from shared.errors import IllegalTransition
from shared.events import (
    Envelope,
    RehandleRequested,
    RehandlingStarted,
    parse_payload,
)
from shared.service import ServiceContext

log = logging.getLogger("hotline.dispatch")


# ---- re-handling (Art 14) -------------------------------------------------------------


async def on_rehandle_requested(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """再次办理: back to the same unit, once; a second request is logged and ignored."""
    event = parse_payload(envelope)
    assert isinstance(event, RehandleRequested)
    exists = await uow.conn.scalar(
        select(func.count()).where(assignments.c.ticket_id == event.ticket_id)
    )
    if not exists:
        log.warning(
            "re-handling for a ticket dispatch does not know", extra={"ticket": event.ticket_id}
        )
        return
    row, current = await load_for_update(uow, event.ticket_id)
    now = ctx.clock.now()
    try:
        again = current.rehandle(at=now)
    except IllegalTransition as refused:  # the evaluation side refuses it too: log only
        log.warning(
            "re-handling ignored",
            extra={"ticket": event.ticket_id, "reason": str(refused), "round": row.round},
        )
        return
    if event.unit_id != row.unit_id:  # logged: the ticket goes back to its own unit
        log.warning(
            "re-handling names another unit; it goes back to the unit that handled it",
            extra={"ticket": event.ticket_id, "named": event.unit_id, "unit": row.unit_id},
        )
    assert again.unit_id is not None
    uow.emit(
        RehandlingStarted(
            ticket_id=event.ticket_id, unit_id=again.unit_id, started_at=now
        ).outgoing(producer=PRODUCER, occurred_at=now)
    )
    await write_dispatch(
        ctx,
        uow,
        row,
        current,
        again,
        note=f"re-handling (Art 14): {event.reason}",
        extra={"reply": None},
    )
