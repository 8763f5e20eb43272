"""A ticket's timeline: everything that happened to it across the services, in order, as
far as the caller may see (issue 4, item 10). Each service serves the events it emitted
about the ticket (``/internal/tickets/{id}/events``, from its outbox); the gateway asks
all of them at once, as the caller, and merges."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel

from gateway.auth import CallerDep
from gateway.proxy import ServiceUnavailable, Upstreams
from shared.access import Objects, access
from shared.auth import Caller, Role, SignedAs
from shared.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1/tickets", tags=["timeline"])


class TimelineEntry(BaseModel):
    occurred_at: str
    type: str
    producer: str
    event_id: str
    payload: dict[str, Any]


class Timeline(BaseModel):
    ticket_id: str
    events: list[TimelineEntry]


async def _get(upstreams: Upstreams, service: str, path: str, caller: Caller) -> Any:
    secret = upstreams.secret
    upstream = upstreams.get(service)
    try:
        response = await upstream.client.get(path, auth=SignedAs(secret, caller))
    except Exception as exc:  # noqa: BLE001 - any transport failure is the same to a caller
        raise ServiceUnavailable(f"{service} did not answer: {type(exc).__name__}") from exc
    return response


# At the same instant a clock falls overdue before it is escalated (RULES.md §4: level 1
# escalation is at overdue); otherwise events of one instant keep their type order.
_SAME_INSTANT = {"sla.overdue": "sla.escalated.0", "sla.escalated": "sla.escalated.1"}


# Who reads one ticket through the gateway (its timeline, its view): the roles dispatch lets
# read an assignment; dispatch decides the object (a unit its own and co-handled tickets, an
# authority its industry's, a district agency its district's).
TICKET_READERS = (Role.OPERATOR, Role.AGENCY, Role.UNIT, Role.AUTHORITY, Role.ADMIN)
TICKET_OBJECTS = (
    Objects.OWN_UNIT,
    Objects.CO_UNIT,
    Objects.INDUSTRY,
    Objects.AGENCY,
    Objects.ADMIN,
)


def _order(event: dict[str, Any]) -> tuple[str, str]:
    return event["occurred_at"], _SAME_INSTANT.get(event["type"], event["type"])


@router.get("/{ticket_id}/timeline", response_model=Timeline)
@access(*TICKET_READERS, objects=TICKET_OBJECTS)
async def timeline(ticket_id: str, request: Request, caller: CallerDep) -> Timeline:
    """Registration, dispatch, returns, acceptance, clocks, extensions, replies, revisits and
    supervision of one ticket, oldest first. A unit sees only its own tickets, and only the
    events about its own handling of them."""
    caller.require(*TICKET_READERS)
    upstreams: Upstreams = request.app.state.upstreams
    if caller.role in (Role.UNIT, Role.AUTHORITY):  # dispatch knows their scope
        assignment = await _get(
            upstreams, "dispatch", f"/tickets/{quote(ticket_id, safe='')}", caller
        )
        if assignment.status_code == 403:
            raise Forbidden("this ticket is outside your unit or industry")
        if assignment.status_code == 404:
            raise NotFound(f"no ticket {ticket_id}")
    path = f"/internal/tickets/{quote(ticket_id, safe='')}/events"
    internal = caller.model_copy(update={"internal": True})
    answers = await asyncio.gather(
        *(_get(upstreams, name, path, internal) for name in upstreams.services)
    )
    events: list[dict[str, Any]] = []
    for answer in answers:
        if answer.status_code == 200:
            events.extend(orjson.loads(answer.content))
    if not events:
        raise NotFound(f"no ticket {ticket_id}")
    if caller.role is Role.UNIT:
        events = [e for e in events if e["payload"].get("unit_id") in (None, caller.unit_id)]
    events.sort(key=_order)
    return Timeline(
        ticket_id=ticket_id,
        events=[
            TimelineEntry(
                occurred_at=e["occurred_at"],
                type=e["type"],
                producer=e["producer"],
                event_id=e["event_id"],
                payload=e["payload"],
            )
            for e in events
        ],
    )
