"""Suggesting the matter and unit for a ticket's text: jieba segmentation over the catalog
keywords, plus the terms past dispatches taught (``term_stats``, ``unit_stats``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Collection
from typing import Any

import jieba
from sqlalchemy import func, select, update

from services.dispatch.domain import (
    KeywordIndex,
    check_dispatch_target,
    suggest_matter,
)
from services.dispatch.handlers.common import matter_from_row, policy, unit_from_row
from services.dispatch.models import (
    catalog_versions,
    matter_units,
    matters,
    term_stats,
    unit_stats,
    units,
)
from services.dispatch.schemas import SuggestionPublic
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import IllegalTransition
from shared.service import ServiceContext

jieba.setLogLevel(logging.WARNING)
_TOKENIZER = jieba.Tokenizer()
_ADDED: set[str] = set()
_LOCK = threading.Lock()
MAX_TERM_LENGTH = 40


def _segment(text: str, keywords: Collection[str]) -> list[str]:
    with _LOCK:
        for kw in keywords:
            if kw not in _ADDED:
                _TOKENIZER.add_word(kw, freq=100000)
                _ADDED.add(kw)
        return [t for t in _TOKENIZER.lcut(text) if len(t.strip()) > 1]


async def segment(text: str, keywords: Collection[str] = ()) -> list[str]:
    return await asyncio.to_thread(_segment, text, keywords)


async def warm_up(ctx: ServiceContext) -> None:
    """Load the segmentation dictionary before the first ticket needs it."""
    await asyncio.to_thread(_TOKENIZER.initialize)


async def _index(ctx: ServiceContext, conn: Any) -> KeywordIndex:
    # every applied version changes the count; the index follows it
    generation = await conn.scalar(select(func.count(catalog_versions.c.applied_at)))
    cached = ctx.extras.get("dispatch_index")
    if cached is not None and cached[0] == generation:
        index: KeywordIndex = cached[1]
        return index
    rows = (await conn.execute(select(matters).where(matters.c.active))).all()
    index = KeywordIndex.build(matter_from_row(r) for r in rows)
    ctx.extras["dispatch_index"] = (generation, index)
    return index


async def suggest(
    ctx: ServiceContext,
    conn: Any,
    content: str,
    district: str,
    *,
    exclude_units: Collection[str] = (),
) -> SuggestionPublic:
    """The likeliest matter and a unit that may take it in ``district``; ``confident`` only
    when the confidence reaches the policy threshold and a unit was found."""
    index = await _index(ctx, conn)
    tokens = await segment(content, index.by_keyword.keys())
    history: dict[str, dict[str, int]] = defaultdict(dict)
    if tokens:
        rows = await conn.execute(select(term_stats).where(term_stats.c.term.in_(set(tokens))))
        for r in rows:
            history[r.term][r.matter_code] = r.n
    found = suggest_matter(content, tokens, index, history)
    threshold = (await policy(ctx, ctx.clock.now())).suggestion_threshold
    unit_id = None
    if found.matter_code is not None:
        unit_id = await _unit_for(conn, found.matter_code, district, exclude_units)
    return SuggestionPublic(
        matter_code=found.matter_code,
        matter_name=index.names.get(found.matter_code or ""),
        unit_id=unit_id,
        confidence=found.confidence,
        threshold=threshold,
        confident=unit_id is not None and found.confidence >= threshold,
        matched=list(found.matched),
        alternatives=[{"matter_code": a.matter_code, "score": a.score} for a in found.alternatives],
    )


async def _unit_for(
    conn: Any, matter_code: str, district: str, exclude: Collection[str]
) -> str | None:
    """The catalog's unit for the matter in the district, else the unit past dispatches of
    it went to most; never one the Art 8 check refuses or one excluded."""
    matter_row = (await conn.execute(select(matters).where(matters.c.code == matter_code))).first()
    if matter_row is None:
        return None
    matter = matter_from_row(matter_row)
    candidates: list[str] = []
    named = await conn.scalar(
        select(matter_units.c.unit_id).where(
            matter_units.c.matter_code == matter_code, matter_units.c.district == district
        )
    )
    if named:
        candidates.append(named)
    learnt = await conn.execute(
        select(unit_stats.c.unit_id)
        .where(unit_stats.c.matter_code == matter_code, unit_stats.c.district == district)
        .order_by(unit_stats.c.n.desc())
        .limit(5)
    )
    candidates.extend(r.unit_id for r in learnt)
    for unit_id in candidates:
        if unit_id in exclude:
            continue
        row = (await conn.execute(select(units).where(units.c.unit_id == unit_id))).first()
        if row is None:
            continue
        try:
            check_dispatch_target(matter, unit_from_row(row))
        except IllegalTransition:
            continue
        return unit_id
    return None


async def learn(
    uow: UnitOfWork, content: str | None, matter_code: str, district: str, unit_id: str
) -> None:
    """A completed ticket confirms its matter and unit: remember its terms for next time."""
    conn = uow.conn
    terms = Counter(t[:MAX_TERM_LENGTH] for t in await segment(content or ""))
    for term in terms:
        await _bump(conn, term_stats, {"term": term, "matter_code": matter_code})
    await _bump(
        conn, unit_stats, {"matter_code": matter_code, "district": district, "unit_id": unit_id}
    )


async def _bump(conn: Any, table: Any, key: dict[str, str]) -> None:
    inserted = await conn.execute(insert_ignoring_duplicates(conn, table).values(**key, n=1))
    if inserted.rowcount == 0:
        await conn.execute(
            update(table).where(*(table.c[k] == v for k, v in key.items())).values(n=table.c.n + 1)
        )
