"""Queries: one ticket (full requester data, audited), the operators' list with filters and
Chinese text search, the citizen's lookup, the matters, and the audit log itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Text, any_, bindparam, case, exists, func, select
from sqlalchemy.dialects import postgresql

from services.intake.domain import (
    DISTRICTS,
    STATUS_LABELS,
    Status,
    mask_id_number,
    mask_name,
    mask_phone,
    query_terms,
    same_phone,
)
from services.intake.models import (
    matters,
    numbered,
    requester_reads,
    ticket_terms,
    ticket_words,
    tickets,
)
from services.intake.schemas import (
    AnswerPublic,
    MatterPublic,
    RequesterContact,
    RequesterReadPublic,
    RequesterReadsPublic,
    TicketFilter,
    TicketPublic,
    TicketsPublic,
    TicketStatusPublic,
)
from services.intake.sealed import (
    SEALED_COLUMNS,
    key_ring,
    open_requester,
    phone_index,
    with_requester,
)
from shared.audit import append_chained
from shared.auth import Caller, Role
from shared.detectors import mask_personal_data
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import Reply
from shared.sealing import KeyRing
from shared.service import ServiceContext

# Art 28: full requester data only where the role needs it; every such read is logged.
FULL_REQUESTER_ROLES = frozenset({Role.OPERATOR, Role.AGENCY, Role.ADMIN})
# One answer for an unknown number and a wrong phone: the lookup reveals nothing.
# a search matching more tickets than this reads its page in list order, not by sorting
WIDE_SEARCH = 2000
NOT_YOURS = "no ticket {ticket_id} filed with that phone number"
_URGENCY_ORDER = case(
    (tickets.c.urgency == "life_safety", 0), (tickets.c.urgency == "livelihood", 1), else_=2
)


def to_public(row: Mapping[Any, Any], *, full: bool) -> TicketPublic:
    return TicketPublic(**public_fields(row, full=full))


def public_fields(row: Mapping[Any, Any], *, full: bool) -> dict[str, Any]:
    """A stored (or just registered) ticket's fields as ``TicketPublic`` shows them, with
    the requester masked unless ``full``."""
    answer = None
    if row.get("answer") is not None:
        answer = AnswerPublic(
            text=row["answer"],
            knowledge_entry_ids=row["knowledge_entry_ids"] or [],
            answered_at=row["answered_at"],
            answered_by=row["answered_by"],
        )
    # a literal: dict(...)'s keyword arguments took twice its time (every registration)
    return {
        "ticket_id": row["ticket_id"],
        "status": row["status"],
        "channel": row["channel"],
        "type": row["type"],
        "urgency": row["urgency"],
        "matter_code": row["matter_code"],
        "district": row["district"],
        "district_name": DISTRICTS[row["district"]],
        "address": row["address"],
        "content": row["content"] if full else mask_personal_data(row["content"]),
        "requester_name": row["requester_name"] if full else mask_name(row["requester_name"]),
        "requester_phone": row["requester_phone"] if full else mask_phone(row["requester_phone"]),
        "requester_id_number": (
            row.get("requester_id_number")
            if full
            else mask_id_number(row.get("requester_id_number"))
        ),
        "anonymous": row["anonymous"],
        "flagged": row["flagged"],
        "flagged_keywords": row.get("flagged_keywords") or [],
        "registered_at": row["registered_at"],
        "attachments": row.get("attachments") or [],
        "answer": answer,
        "call_rating": row.get("call_rating"),
        "reply": row.get("reply"),
        "completed_at": row.get("completed_at"),
    }


async def read_requester(ctx: ServiceContext, caller: Caller, ticket_id: str) -> RequesterContact:
    """The requester's contact details: the lead unit's read for its reply (Art 13), or a
    reading role's; audited in the same transaction (Art 28, 29)."""
    async with ctx.db.unit_of_work() as uow:
        row = (await uow.conn.execute(select(tickets).where(numbered(ticket_id)))).first()
        if row is None:
            raise NotFound(f"no ticket {ticket_id}")
        purpose = "requester contact"
        if caller.role is Role.UNIT:
            if row.lead_unit_id is None or row.lead_unit_id != caller.unit_id:
                raise Forbidden(
                    "only the ticket's lead unit reads the requester's contact details",
                    rule="Art 13: the lead unit contacts the requester; co-units see them masked",
                )
            purpose = "lead unit contact (Art 13)"
        await append_chained(
            uow.conn,
            requester_reads,
            [
                {
                    "ticket_id": ticket_id,
                    "reader": caller.sub,
                    "reader_role": caller.role.value,
                    "read_at": ctx.clock.now(),
                    "purpose": purpose,
                }
            ],
        )
    return RequesterContact(ticket_id=ticket_id, **open_requester(key_ring(ctx), row._mapping))


async def get_ticket(ctx: ServiceContext, caller: Caller, ticket_id: str) -> TicketPublic:
    """One ticket. A role that needs the requester's name and phone sees them in full, and
    the read is written to the audit log in the same transaction (Art 28, 29)."""
    full = caller.role in FULL_REQUESTER_ROLES
    purpose = "ticket detail"
    async with ctx.db.unit_of_work() as uow:
        row = (await uow.conn.execute(select(tickets).where(numbered(ticket_id)))).first()
        if row is None:
            raise NotFound(f"no ticket {ticket_id}")
        if full and any(row._mapping[c] for c in SEALED_COLUMNS):
            await append_chained(
                uow.conn,
                requester_reads,
                [
                    {
                        "ticket_id": ticket_id,
                        "reader": caller.sub,
                        "reader_role": caller.role.value,
                        "read_at": ctx.clock.now(),
                        "purpose": purpose,
                    }
                ],
            )
    return to_public(with_requester(key_ring(ctx), row._mapping), full=full)


def _has_words(terms: set[str]) -> ColumnElement[bool]:
    """PostgreSQL: a ``ticket_words`` row holds every one of ``terms``."""
    words = bindparam("words", sorted(terms), type_=postgresql.ARRAY(Text))
    return ticket_words.c.terms.contains(words)


def _conditions(
    f: TicketFilter, ring: KeyRing, *, postgres: bool, walk: bool = False, few: bool = False
) -> list[ColumnElement[bool]]:
    """The filter as SQL. ``walk``: the query words checked per ticket (a correlated
    subquery), for reading a list in its index order when many tickets match. ``few``
    (PostgreSQL): few tickets match, read by their ids (the GIN index's) and then sorted;
    not knowing how few, the planner may walk the list in its order instead, probing each
    ticket's words, which takes longer the fewer match."""
    conds: list[ColumnElement[bool]] = [tickets.c.ticket_id.is_not(None)]
    for name in ("status", "channel", "type", "urgency", "district", "matter_code", "flagged"):
        value = getattr(f, name)
        if value is not None:
            conds.append(tickets.c[name] == value)
    if f.requester_phone is not None:
        conds.append(tickets.c.requester_phone_index == phone_index(ring, f.requester_phone))
    if f.registered_from is not None:
        conds.append(tickets.c.registered_at >= f.registered_from)
    if f.registered_to is not None:
        conds.append(tickets.c.registered_at < f.registered_to)
    if f.q is not None:
        terms = query_terms(f.q)
        if not terms:
            raise InvalidInput("q", "no searchable words (only punctuation or words like 的, 了)")
        if postgres:  # the ticket's words (its row, by primary key) or the words' GIN index
            matching = select(ticket_words.c.ticket_pk).where(_has_words(terms))
            if walk:
                conds.append(
                    exists().where(ticket_words.c.ticket_pk == tickets.c.id, _has_words(terms))
                )
            elif few:
                conds.append(tickets.c.id == any_(func.array(matching.scalar_subquery())))
            else:
                conds.append(tickets.c.id.in_(matching))
            return conds
        if walk:  # the ticket's own words among the query's, one index probe per word
            own = (
                select(func.count())
                .select_from(ticket_terms)
                .where(
                    ticket_terms.c.ticket_pk == tickets.c.id,
                    ticket_terms.c.term.in_(sorted(terms)),
                )
                .scalar_subquery()
            )
            conds.append(own == len(terms))
            return conds
        # every word of the query among the ticket's words: an indexed lookup per word
        matching = (
            select(ticket_terms.c.ticket_pk)
            .where(ticket_terms.c.term.in_(sorted(terms)))
            .group_by(ticket_terms.c.ticket_pk)
            .having(func.count() == len(terms))
        )
        conds.append(tickets.c.id.in_(matching))
    return conds


_PAGING = {"q", "sort", "limit", "offset"}


def _words_only(f: TicketFilter) -> bool:
    """A search by words and nothing else."""
    filters = TicketFilter.model_fields.keys() - _PAGING
    return f.q is not None and all(getattr(f, k) is None for k in filters)


def _count(f: TicketFilter, conds: list[ColumnElement[bool]], *, postgres: bool) -> Any:
    """How many tickets match. A search by words alone is counted in the words' tables
    without visiting the tickets (a common word matches half the city's tickets): on SQLite
    the index of ``ticket_terms`` (one row per word of a ticket), on PostgreSQL the narrow
    rows of ``ticket_words`` that its GIN index finds."""
    if f.q is None or not _words_only(f):
        return select(func.count()).select_from(tickets).where(*conds)
    if postgres:
        return select(func.count()).select_from(ticket_words).where(_has_words(query_terms(f.q)))
    terms = sorted(query_terms(f.q))
    if len(terms) == 1:
        return select(func.count()).where(ticket_terms.c.term == terms[0])
    every = (
        select(ticket_terms.c.ticket_pk)
        .where(ticket_terms.c.term.in_(terms))
        .group_by(ticket_terms.c.ticket_pk)
        .having(func.count() == len(terms))
    )
    return select(func.count()).select_from(every.subquery())


async def list_tickets(ctx: ServiceContext, caller: Caller, f: TicketFilter) -> TicketsPublic:
    """Operators' list: requester data always masked (Art 28); flagged tickets first
    (Art 27), then the chosen order."""
    ring = key_ring(ctx)
    postgres = ctx.db.is_postgres
    conds = _conditions(f, ring, postgres=postgres)
    order: list[Any] = [tickets.c.flagged.desc()]
    if f.sort == "registered_at":
        order += [tickets.c.registered_at.asc(), tickets.c.id.asc()]
    elif f.sort == "urgency":
        order += [_URGENCY_ORDER, tickets.c.registered_at.desc(), tickets.c.id.desc()]
    else:
        order += [tickets.c.registered_at.desc(), tickets.c.id.desc()]
    async with ctx.db.unit_of_work() as uow:
        conn = uow.conn
        count = await conn.scalar(_count(f, conds, postgres=postgres))
        if f.q is not None and f.sort == "-registered_at" and (count or 0) > WIDE_SEARCH:
            # many matches (a common word): walking the list in its order (ix_tickets_queue)
            # finds a page at once, where reading every match would sort them all
            conds = _conditions(f, ring, postgres=postgres, walk=True)
        elif postgres and _words_only(f) and (count or 0) <= WIDE_SEARCH:
            conds = _conditions(f, ring, postgres=postgres, few=True)
        rows = (
            await conn.execute(
                select(tickets).where(*conds).order_by(*order).limit(f.limit).offset(f.offset)
            )
        ).all()
        if f.requester_phone is not None and rows:
            # Art 28, 29: finding a person's tickets by their number is a read of their data
            now = ctx.clock.now()
            await append_chained(
                conn,
                requester_reads,
                [
                    {
                        "ticket_id": r.ticket_id,
                        "reader": caller.sub,
                        "reader_role": caller.role.value,
                        "read_at": now,
                        "purpose": "phone search",
                    }
                    for r in rows
                ],
            )
    return TicketsPublic(
        data=[to_public(with_requester(ring, r._mapping), full=False) for r in rows],
        count=count or 0,
    )


async def lookup_ticket(
    ctx: ServiceContext, caller: Caller, ticket_id: str, phone: str
) -> TicketStatusPublic:
    """A citizen's own ticket, by number and the phone it was filed with: status and the
    reply, nothing about anyone else. A wrong phone reads exactly like an unknown number."""
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(tickets, matters.c.name.label("matter_name"))
                .select_from(tickets.outerjoin(matters, matters.c.code == tickets.c.matter_code))
                .where(numbered(ticket_id))
            )
        ).first()
    if row is None or not same_phone(row.requester_phone_index, phone_index(key_ring(ctx), phone)):
        raise NotFound(NOT_YOURS.format(ticket_id=ticket_id))
    status = Status(row.status)
    return TicketStatusPublic(
        ticket_id=row.ticket_id,
        status=status,
        status_label=STATUS_LABELS[status],
        type=row.type,
        channel=row.channel,
        matter_code=row.matter_code,
        matter_name=row.matter_name,
        district_name=DISTRICTS[row.district],
        registered_at=row.registered_at,
        status_changed_at=row.status_at or row.answered_at or row.registered_at,
        answer=row.answer,
        answered_at=row.answered_at,
        reply=Reply.model_validate(row.reply) if row.reply else None,
        completed_at=row.completed_at,
    )


async def list_requester_reads(
    ctx: ServiceContext, ticket_id: str | None, limit: int, offset: int
) -> RequesterReadsPublic:
    conds = [requester_reads.c.ticket_id == ticket_id] if ticket_id else []
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(requester_reads).where(*conds))
        rows = (
            await conn.execute(
                select(requester_reads)
                .where(*conds)
                .order_by(requester_reads.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return RequesterReadsPublic(
        data=[RequesterReadPublic.model_validate(r._mapping) for r in rows], count=count or 0
    )


async def list_matters(ctx: ServiceContext) -> list[MatterPublic]:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(matters).where(matters.c.active).order_by(matters.c.code))
        ).all()
    return [MatterPublic.model_validate(r._mapping) for r in rows]


async def catalog_readiness(ctx: ServiceContext) -> dict[str, Any]:
    """Intake can only register tickets once it knows the catalog's matters."""
    async with ctx.db.engine.connect() as conn:
        known = await conn.scalar(select(func.count()).select_from(matters))
    return {"matters_known": known or 0, "ready": bool(known)}
