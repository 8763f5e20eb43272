"""Cases for training and publicity (Art 25, 30): the agency marks a completed ticket as a
typical or excellent case; every text is anonymised with the screening detectors plus names
and addresses; a second agency reviewer publishes it (or returns it), and published cases
appear on the public case page and in the training library, searched like the knowledge
base (word segmentation, ranked)."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import insert, select, update

from services.knowledge.handlers.common import policy_at
from services.knowledge.models import cases, finished_tickets
from services.knowledge.schemas import CaseCreate, CasePublic, CaseReview, CasesPublic
from services.knowledge.tokens import query_terms, tokenize
from shared.auth import Caller, Role
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.detectors import ScreeningRules, anonymise
from shared.errors import Forbidden, IllegalTransition, NotFound
from shared.events import Envelope, TicketAnswered, TicketCompleted, parse_payload
from shared.service import ServiceContext

TEXTS = ("title", "request", "handling", "result", "comment")
LIBRARY_READERS = (
    Role.OPERATOR,
    Role.AGENCY,
    Role.UNIT,
    Role.ADMIN,
    Role.GOVSERVICE,
    Role.SUPERVISOR,
    Role.AUTHORITY,
)
REVIEW_RULE = "Art 25, 30: a case is reviewed by another reviewer before publication"
FINISHED_RULE = "Art 25: the agency marks completed tickets as typical or excellent cases"


async def on_ticket_finished(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    """A ticket completed by its unit (ticket.completed) or closed on the spot
    (ticket.answered) may become a case from now on."""
    event = parse_payload(envelope)
    if isinstance(event, TicketCompleted):
        at = event.completed_at
    else:
        assert isinstance(event, TicketAnswered)
        at = event.answered_at
    await uow.conn.execute(
        insert_ignoring_duplicates(uow.conn, finished_tickets).values(
            ticket_id=event.ticket_id, finished_at=at
        )
    )


CASE_EVENT_HANDLERS = {
    TicketCompleted.TYPE: on_ticket_finished,
    TicketAnswered.TYPE: on_ticket_finished,
}


async def create_case(ctx: ServiceContext, caller: Caller, data: CaseCreate) -> CasePublic:
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        finished = await uow.conn.scalar(
            select(finished_tickets.c.ticket_id).where(
                finished_tickets.c.ticket_id == data.ticket_id
            )
        )
        if finished is None:
            raise IllegalTransition(
                f"ticket {data.ticket_id} is not completed or closed: only a finished ticket "
                "becomes a case",
                rule=FINISHED_RULE,
            )
        settings = (await policy_at(uow.conn, now)).settings
        rules = ScreeningRules.of(settings.public_contacts, settings.classification_exempt_terms)
        replaced: Counter[str] = Counter()
        row: dict[str, Any] = {}
        for field in TEXTS:
            text = getattr(data, field)
            if text is None:
                row[field] = None
                continue
            done = anonymise(text, rules, data.names)
            row[field] = done.text
            replaced.update(done.replaced)
        row.update(
            case_id=str(uuid.uuid4()),
            ticket_id=data.ticket_id,
            kind=data.kind,
            anonymised=dict(replaced),
            status="draft",
            created_by=caller.sub,
            created_at=now,
        )
        await uow.conn.execute(insert(cases).values(row))
    return _public(row, full=True)


async def review_case(
    ctx: ServiceContext, caller: Caller, case_id: str, data: CaseReview
) -> CasePublic:
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _row(uow.conn, case_id)
        if row["status"] != "draft":
            raise IllegalTransition(f"case {case_id} is {row['status']}, not a draft")
        if row["created_by"] == caller.sub:
            raise IllegalTransition("the author does not review their own case", rule=REVIEW_RULE)
        values: dict[str, Any] = {
            "status": "published" if data.approve else "returned",
            "reviewed_by": caller.sub,
            "reviewed_at": now,
            "review_note": data.note,
            "published_at": now if data.approve else None,
        }
        await uow.conn.execute(update(cases).where(cases.c.case_id == case_id).values(values))
    return _public({**row, **values}, full=True)


async def library(
    ctx: ServiceContext, caller: Caller, *, q: str | None, kind: str | None, status: str | None
) -> CasesPublic:
    """The training library: published cases (the agency may ask for drafts), best match
    first when searched."""
    caller.require(*LIBRARY_READERS)
    if status not in (None, "published") and caller.role is not Role.AGENCY:
        raise Forbidden("only the agency sees cases before publication")
    return await _search(ctx, q=q, kind=kind, status=status or "published", full=True)


async def public_page(ctx: ServiceContext, caller: Caller, *, q: str | None) -> CasesPublic:
    """The public case page (Art 30): published cases without any link to the ticket."""
    return await _search(ctx, q=q, kind=None, status="published", full=False)


async def _row(conn: Any, case_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(cases).where(cases.c.case_id == case_id))).first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return dict(row._mapping)


async def _search(
    ctx: ServiceContext, *, q: str | None, kind: str | None, status: str, full: bool
) -> CasesPublic:
    query = select(cases).where(cases.c.status == status)
    if kind:
        query = query.where(cases.c.kind == kind)
    async with ctx.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    terms = query_terms(q) if q else []
    if not terms:
        rows.sort(key=lambda r: r["published_at"] or r["created_at"], reverse=True)
        return CasesPublic(data=[_public(r, full=full) for r in rows], count=len(rows))
    # BM25 over the cases' words (title counted twice), the knowledge base's ranking
    docs = [
        Counter(tokenize(" ".join([r["title"]] * 2 + [r[f] or "" for f in TEXTS[1:]])))
        for r in rows
    ]
    avgdl = sum(sum(d.values()) for d in docs) / max(len(docs), 1)
    df = Counter(t for d in docs for t in set(d) if t in terms)
    scored = []
    for row, doc in zip(rows, docs, strict=True):
        length = sum(doc.values())
        score = 0.0
        for t in terms:
            tf = doc.get(t, 0)
            if tf:
                idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / max(avgdl, 1)))
        if score > 0:
            scored.append((score, row))
    scored.sort(key=lambda s: s[0], reverse=True)
    data = [_public(r, full=full, score=round(s, 4)) for s, r in scored]
    return CasesPublic(data=data, count=len(data))


def _public(row: dict[str, Any], *, full: bool, score: float | None = None) -> CasePublic:
    data = {**row, "score": score}
    if not full:
        data.update(ticket_id=None, created_by=None, reviewed_by=None, review_note=None)
    return CasePublic.model_validate(data)
