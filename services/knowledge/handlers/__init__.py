"""The knowledge service's commands, queries and background work, one module per
resource: ``entries``, ``requests`` (Art 17), ``notices`` (Art 18), ``policy``,
``queries`` (search), ``search`` (the index), ``scanner`` (due times)."""

from __future__ import annotations

from services.knowledge import tokens
from services.knowledge.handlers.common import KnowledgeState
from services.knowledge.handlers.scanner import due_scanner
from services.knowledge.handlers.search import ensure_indexed
from shared.service import ServiceContext


async def start(ctx: ServiceContext) -> None:
    """Load the word list once, and index entries that have no index row yet."""
    tokens.initialize()
    ctx.extras["knowledge"] = KnowledgeState()
    async with ctx.db.unit_of_work() as uow:
        await ensure_indexed(uow.conn)


__all__ = ["due_scanner", "start"]
