"""Search for operators and suggestions for a ticket's text (Art 15: 可查询)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.knowledge import tokens
from services.knowledge.domain import (
    WIDE_READERS,
    EntryKind,
    EntryStatus,
)
from services.knowledge.handlers import search
from services.knowledge.schemas import (
    FaqItem,
    ReindexResult,
    SearchHit,
    SearchResults,
    Suggestion,
    Suggestions,
    SuggestRequest,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden
from shared.service import ServiceContext

SEARCH_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN, Role.UNIT, Role.AUTHORITY)


def search_filter(
    caller: Caller,
    now: datetime,
    *,
    include_invalid: bool = False,
    status: EntryStatus | None = None,
    kind: EntryKind | None = None,
    unit_id: str | None = None,
    matter_code: str | None = None,
    valid_until_before: datetime | None = None,
) -> search.SearchFilter:
    """Operators see valid, published entries only; the agency and the administrator may
    ask for every state; a unit for its own entries in every state (Art 19, 20)."""
    caller.require(*SEARCH_ROLES)
    wide = include_invalid or (status is not None and status is not EntryStatus.PUBLISHED)
    if wide and caller.role not in WIDE_READERS:
        raise Forbidden("only valid entries may be searched with this role")
    if wide and caller.role is Role.UNIT and unit_id not in (None, caller.unit_id):
        raise Forbidden("a unit sees only its own entries beyond the valid ones")
    return search.SearchFilter(
        now=now,
        valid_only=not wide or caller.role is Role.UNIT,
        own_unit=caller.unit_id if wide and caller.role is Role.UNIT else None,
        statuses=(status,) if status is not None else (),
        kind=kind,
        unit_id=unit_id,
        matter_code=matter_code,
        valid_until_before=valid_until_before,
    )


def _hit(entry: Mapping[str, Any], score: float, terms: list[str], now: datetime) -> SearchHit:
    return SearchHit(
        entry_id=entry["entry_id"],
        kind=entry["kind"],
        title=entry["title"],
        unit_id=entry["unit_id"],
        status=entry["status"],
        valid=search.valid_now(entry, now),
        valid_until=entry["valid_until"],
        matter_codes=entry["matter_codes"] or [],
        score=round(score, 6),
        snippet=search.snippet(entry, terms),
    )


async def search_entries(
    ctx: ServiceContext,
    q: str,
    flt: search.SearchFilter,
    *,
    limit: int,
    offset: int,
) -> SearchResults:
    terms = tokens.query_terms(q)
    async with ctx.db.engine.connect() as conn:
        hits = await search.search(conn, terms, flt, limit=limit, offset=offset)
    data = [_hit(h.entry, h.score, terms, flt.now) for h in hits]
    return SearchResults(data=data, count=len(data), terms=terms)


def _best_answer(faq: list[dict[str, str]] | None, idf: Mapping[str, float]) -> FaqItem | None:
    """The FAQ pair whose question shares the most telling terms with the ticket."""
    best, best_score = None, 0.0
    for item in faq or []:
        score = sum(idf.get(t, 0.0) for t in set(tokens.tokenize(item["question"])))
        if score > best_score:
            best, best_score = item, score
    return FaqItem.model_validate(best) if best else None


async def suggest(ctx: ServiceContext, caller: Caller, data: SuggestRequest) -> Suggestions:
    """The best valid entries to answer a ticket on the spot (intake's direct answer):
    the ticket's matter first, then the rest of the base."""
    caller.require(Role.OPERATOR, Role.AGENCY, Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.engine.connect() as conn:
        terms = await search.selective_terms(conn, data.text)
        idf = await search.idf_of(conn, terms)
        hits: list[search.Hit] = []
        if data.matter_code:
            flt = search.SearchFilter(now=now, matter_code=data.matter_code)
            hits = await search.search(conn, terms, flt, limit=data.limit)
        if len(hits) < data.limit:
            seen = {h.entry["entry_id"] for h in hits}
            more = await search.search(
                conn, terms, search.SearchFilter(now=now), limit=data.limit + len(seen)
            )
            hits += [h for h in more if h.entry["entry_id"] not in seen][: data.limit - len(hits)]
    out = [
        Suggestion(
            **_hit(h.entry, h.score, terms, now).model_dump(),
            answer=_best_answer(h.entry["faq"], idf),
        )
        for h in hits
    ]
    return Suggestions(data=out, count=len(out))


async def reindex(ctx: ServiceContext, caller: Caller) -> ReindexResult:
    caller.require(Role.ADMIN)
    async with ctx.db.unit_of_work() as uow:
        result = await search.rebuild_index(uow.conn)
    return ReindexResult.model_validate(result)
