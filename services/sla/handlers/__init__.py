"""The SLA service's event consumers, commands and queries."""

from services.sla.handlers.clocks import (
    on_accepted,
    on_answered,
    on_completed,
    on_dispatched,
    on_registered,
    on_return_approved,
)
from services.sla.handlers.many import MANY_HANDLERS, READ_AS
from shared.events import (
    ReturnApproved,
    TicketAccepted,
    TicketAnswered,
    TicketCompleted,
    TicketDispatched,
    TicketRegistered,
)

EVENT_HANDLERS = {
    TicketRegistered.TYPE: on_registered,
    TicketAnswered.TYPE: on_answered,
    TicketDispatched.TYPE: on_dispatched,
    ReturnApproved.TYPE: on_return_approved,
    TicketAccepted.TYPE: on_accepted,
    TicketCompleted.TYPE: on_completed,
}

__all__ = ["EVENT_HANDLERS", "MANY_HANDLERS", "READ_AS"]
