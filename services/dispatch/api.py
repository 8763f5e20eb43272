"""Dispatch's routes: parse, authorise, call one handler."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.dispatch import handlers
from services.dispatch.schemas import (
    AssignmentPublic,
    AssignmentsPublic,
    MatterPublic,
    ReplyCreate,
    UnitPublic,
)
from shared.service import CallerDep, CtxDep

router = APIRouter(prefix="/tickets", tags=["assignments"])
catalog_router = APIRouter(tags=["catalog"])


@router.get("", response_model=AssignmentsPublic)
async def list_assignments(
    ctx: CtxDep,
    caller: CallerDep,
    state: str | None = None,
    unit_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AssignmentsPublic:
    """Assignments, newest first; a unit user sees only its own unit's."""
    return await handlers.list_assignments(
        ctx, caller, state=state, unit_id=unit_id, limit=limit, offset=offset
    )


@router.get("/{ticket_id}", response_model=AssignmentPublic)
async def get_assignment(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> AssignmentPublic:
    return await handlers.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/accept", response_model=AssignmentPublic)
async def accept(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> AssignmentPublic:
    """接收: the assigned unit accepts the ticket; stops its acceptance clock."""
    return await handlers.accept_ticket(ctx, caller, ticket_id)


@router.post("/{ticket_id}/complete", response_model=AssignmentPublic)
async def complete(
    ticket_id: str, reply: ReplyCreate, ctx: CtxDep, caller: CallerDep
) -> AssignmentPublic:
    """办结: the unit's reply (Art 13); stops the completion clock."""
    return await handlers.complete_ticket(ctx, caller, ticket_id, reply)


@catalog_router.get("/units", response_model=list[UnitPublic])
async def list_units(
    ctx: CtxDep, caller: CallerDep, district: str | None = None
) -> list[UnitPublic]:
    return await handlers.list_units(ctx, district)


@catalog_router.get("/catalog/matters", response_model=list[MatterPublic])
async def list_matters(ctx: CtxDep, caller: CallerDep) -> list[MatterPublic]:
    return await handlers.list_matters(ctx)
