"""The knowledge service's routes."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.knowledge import handlers
from services.knowledge.schemas import EntryCreate, EntryPublic
from shared.service import CallerDep, CtxDep

router = APIRouter(prefix="/entries", tags=["entries"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EntryPublic)
async def create_entry(data: EntryCreate, ctx: CtxDep, caller: CallerDep) -> EntryPublic:
    """Publish a knowledge entry; validity is capped by kind (Art 19)."""
    return await handlers.create_entry(ctx, caller, data)


@router.get("/{entry_id}", response_model=EntryPublic)
async def get_entry(entry_id: str, ctx: CtxDep, caller: CallerDep) -> EntryPublic:
    return await handlers.get_entry(ctx, caller, entry_id)
