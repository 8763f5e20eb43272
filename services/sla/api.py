"""The SLA service's routes."""

from __future__ import annotations

from fastapi import APIRouter

from services.sla import handlers
from services.sla.schemas import PolicyPublic, TicketClocks
from shared.service import CallerDep, CtxDep

router = APIRouter(tags=["clocks"])


@router.get("/tickets/{ticket_id}/clocks", response_model=TicketClocks)
async def ticket_clocks(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> TicketClocks:
    """A ticket's dispatch, acceptance and completion clocks: deadline, state, lateness."""
    return await handlers.ticket_clocks(ctx, caller, ticket_id)


@router.get("/policy", response_model=PolicyPublic)
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """The policy settings (periods, thresholds) in force, and every version."""
    return await handlers.read_policy(ctx)
