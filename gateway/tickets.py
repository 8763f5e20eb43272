"""One ticket view for every role (``GET /api/v1/tickets/{id}``): the ticket as the caller
may see it, from the services that hold its parts, in one vocabulary.

Intake knows the ticket as registered (and the requester), dispatch its assignment, SLA its
clocks. The gateway asks each as the caller; a part the role may not read is left out and
named in ``withheld`` (with the service's reason), so the answer is never more than the
caller could read part by part. ``state`` is one word from one list (RULES.md §3):
dispatch's state once the ticket reached dispatch, before that intake's status."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway.auth import CallerDep
from gateway.proxy import Upstreams
from gateway.timeline import TICKET_OBJECTS, TICKET_READERS, _get
from shared.access import access
from shared.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])

# part name -> (service, path template)
PARTS = {
    "registration": ("intake", "/tickets/{id}"),
    "assignment": ("dispatch", "/tickets/{id}"),
    "clocks": ("sla", "/tickets/{id}/clocks"),
}
STATES = (
    "registered",
    "answered",
    "pending_dispatch",
    "pending_determination",
    "dispatched",
    "return_review",
    "accepted",
    "completed",
    "rehandling",
    "closed",
)


class Withheld(BaseModel):
    part: str
    reason: str


class TicketView(BaseModel):
    ticket_id: str
    state: str | None = Field(description="one vocabulary for the whole life: " + ", ".join(STATES))
    registration: dict[str, Any] | None = Field(
        default=None, description="intake's ticket (requester data as the role may see it)"
    )
    assignment: dict[str, Any] | None = Field(
        default=None, description="dispatch: units, returns, determinations, replies"
    )
    clocks: dict[str, Any] | None = Field(
        default=None, description="SLA: deadlines (UTC) and extension requests"
    )
    withheld: list[Withheld] = Field(default_factory=list)


@router.get("/{ticket_id}", response_model=TicketView)
@access(
    *TICKET_READERS,
    objects=TICKET_OBJECTS,
    refused="role {role} reads no single ticket here; a channel reads its own ticket by "
    "number and phone: POST /api/v1/intake/tickets/lookup",
)
async def ticket_view(ticket_id: str, request: Request, caller: CallerDep) -> TicketView:
    """The ticket as the caller's role may see it: operator, agency, unit, authority and
    admin (the roles some service lets read a ticket; a channel looks up its own ticket with
    its number and phone at POST /api/v1/intake/tickets/lookup)."""
    upstreams: Upstreams = request.app.state.upstreams
    answers = await asyncio.gather(
        *(
            _get(upstreams, service, path.format(id=ticket_id), caller)
            for service, path in PARTS.values()
        )
    )
    view = TicketView(ticket_id=ticket_id, state=None)
    found = False
    for (part, _), answer in zip(PARTS.items(), answers, strict=True):
        if answer.status_code == 200:
            setattr(view, part, orjson.loads(answer.content))
            found = True
        elif answer.status_code in (401, 403):
            detail = orjson.loads(answer.content).get("detail", "not for this role")
            view.withheld.append(Withheld(part=part, reason=detail))
    if not found:
        if view.withheld and len(view.withheld) == len(PARTS):
            raise Forbidden(f"ticket {ticket_id} is not yours to see")
        raise NotFound(f"no ticket {ticket_id}")
    if view.assignment is not None:
        view.state = view.assignment.get("state")
    if view.registration is not None and view.state is None:
        view.state = view.registration.get("status")
    if view.registration is not None and view.registration.get("status") in ("answered", "closed"):
        view.state = view.registration["status"]
    return view
