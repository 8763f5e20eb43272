"""Intake's routes: parse, authorise, call one handler."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.intake import handlers
from services.intake.schemas import MatterPublic, TicketCreate, TicketPublic, TicketsPublic
from shared.auth import Role
from shared.service import CallerDep, CtxDep

router = APIRouter(prefix="/tickets", tags=["tickets"])
matters_router = APIRouter(prefix="/matters", tags=["matters"])

REGISTERING_ROLES = (Role.OPERATOR, Role.CITIZEN, Role.ADMIN)
READING_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TicketPublic)
async def register(data: TicketCreate, ctx: CtxDep, caller: CallerDep) -> TicketPublic:
    """Register a request from any channel; returns its ticket number (e.g. TJ20260115000123)."""
    caller.require(*REGISTERING_ROLES)
    return await handlers.register_ticket(ctx, caller, data)


@router.get("", response_model=TicketsPublic)
async def list_tickets(
    ctx: CtxDep,
    caller: CallerDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TicketsPublic:
    caller.require(*READING_ROLES)
    return await handlers.list_tickets(ctx, caller, status=status_, limit=limit, offset=offset)


@router.get("/{ticket_id}", response_model=TicketPublic)
async def get_ticket(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> TicketPublic:
    caller.require(*READING_ROLES)
    return await handlers.get_ticket(ctx, caller, ticket_id)


@matters_router.get("", response_model=list[MatterPublic])
async def list_matters(ctx: CtxDep, caller: CallerDep) -> list[MatterPublic]:
    """The matters a ticket may be registered under (from the dispatch catalog)."""
    return await handlers.list_matters(ctx)
