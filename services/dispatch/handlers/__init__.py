"""Dispatch's event consumers, command handlers and queries, by subject."""

from services.dispatch.handlers.catalog_versions import catalog_scheduler, seed_catalog
from services.dispatch.handlers.many import MANY_HANDLERS
from services.dispatch.handlers.read_models import (
    early_deadline_settler,
    on_deadline_set,
    on_ticket_flagged,
)
from services.dispatch.handlers.rehandling import on_rehandle_requested
from services.dispatch.handlers.suggest import warm_up
from services.dispatch.handlers.tickets import on_ticket_registered
from shared.events import DeadlineSet, RehandleRequested, TicketFlagged, TicketRegistered

EVENT_HANDLERS = {
    TicketRegistered.TYPE: on_ticket_registered,
    TicketFlagged.TYPE: on_ticket_flagged,
    DeadlineSet.TYPE: on_deadline_set,
    RehandleRequested.TYPE: on_rehandle_requested,
}

__all__ = [
    "EVENT_HANDLERS",
    "MANY_HANDLERS",
    "catalog_scheduler",
    "early_deadline_settler",
    "seed_catalog",
    "warm_up",
]
