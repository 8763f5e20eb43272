"""The evaluation service's routes."""

from __future__ import annotations

from fastapi import APIRouter

from services.evaluation import handlers
from services.evaluation.schemas import RevisitPublic, RevisitRecord
from shared.service import CallerDep, CtxDep

router = APIRouter(prefix="/revisits", tags=["revisits"])


@router.post("/{ticket_id}", response_model=RevisitPublic)
async def record_revisit(
    ticket_id: str, data: RevisitRecord, ctx: CtxDep, caller: CallerDep
) -> RevisitPublic:
    """回访: record the requester's rating of a completed ticket."""
    return await handlers.record_revisit(ctx, caller, ticket_id, data)


@router.get("/{ticket_id}", response_model=RevisitPublic)
async def get_revisit(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> RevisitPublic:
    return await handlers.get_revisit(ctx, caller, ticket_id)
