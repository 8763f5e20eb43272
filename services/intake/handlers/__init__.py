"""Intake's event consumers, commands and queries.

- ``events``: the read models fed by other services (catalog matters, ticket status)
- ``policy``: the versioned policy settings (keywords, duplicate window, attachment limits)
- ``registration``: registering a ticket (and answering it on the spot), rating a call
- ``queries``: what operators, agencies and citizens read, and the requester-data audit
"""

from services.intake.handlers.events import EVENT_HANDLERS, MANY_HANDLERS
from services.intake.handlers.policy import add_policy_version, load_policy, read_policy
from services.intake.handlers.queries import (
    catalog_readiness,
    get_ticket,
    list_matters,
    list_requester_reads,
    list_tickets,
    lookup_ticket,
    read_requester,
)
from services.intake.handlers.registration import rate_call, register_ticket

__all__ = [
    "EVENT_HANDLERS",
    "MANY_HANDLERS",
    "add_policy_version",
    "catalog_readiness",
    "get_ticket",
    "list_matters",
    "list_requester_reads",
    "list_tickets",
    "load_policy",
    "lookup_ticket",
    "rate_call",
    "read_policy",
    "read_requester",
    "register_ticket",
]
