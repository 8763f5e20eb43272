"""Commands: register a ticket (Art 5), answer it on the spot (Art 6), flag sensitive
content (Art 27), hint at duplicates, and record the call rating (Art 14 (1))."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import (
    RequesterMissing,
    Status,
    check_answer_on_the_spot,
    check_attachments,
    check_call_rating,
    check_requester,
    same_phone,
    search_terms,
    sensitive_keywords_in,
    ticket_channel,
    ticket_number,
)
from services.intake.handlers.policy import current_policy
from services.intake.handlers.queries import FULL_REQUESTER_ROLES, NOT_YOURS, to_public
from services.intake.models import matters, ticket_terms, tickets
from services.intake.schemas import (
    CallRatingCreate,
    CallRatingPublic,
    DuplicateHint,
    TicketCreate,
    TicketRegistration,
)
from shared.auth import Caller, Role
from shared.errors import IllegalTransition, InvalidInput, NotFound
from shared.events import (
    CallRated,
    TicketAnswered,
    TicketFlagged,
    TicketRegistered,
    Urgency,
)
from shared.service import ServiceContext

PRODUCER = "intake"
# Art 6: the hotline's operator answers on the spot, nobody else.
ANSWERING_ROLES = (Role.OPERATOR,)
# Earlier tickets of a phone number are shown only to the hotline's own staff: a channel
# client could type anyone's number (Art 28).
DUPLICATE_HINT_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})
MAX_DUPLICATE_HINTS = 10


async def register_ticket(
    ctx: ServiceContext, caller: Caller, data: TicketCreate
) -> TicketRegistration:
    """Register a request and emit its events, in one transaction.

    A consultation answered on the spot emits only ``ticket.answered`` (never
    ``ticket.registered``), so dispatch never sees it and no SLA clock starts for it.
    Sensitive content adds ``ticket.flagged`` after the ticket's first event."""
    if data.answer is not None:
        caller.require(*ANSWERING_ROLES)
        check_answer_on_the_spot(data.type)
    channel = ticket_channel(caller.role.value, caller.channel, data.channel)
    now = ctx.clock.now()
    policy = await current_policy(ctx)
    check_attachments([a.url for a in data.attachments], policy)
    keywords = sensitive_keywords_in(data.content, policy.sensitive_keywords)
    terms = search_terms(data.content)
    async with ctx.db.unit_of_work() as uow:
        matter = (
            await uow.conn.execute(select(matters).where(matters.c.code == data.matter_code))
        ).first()
        if matter is None or not matter.active:
            raise InvalidInput("matter_code", f"unknown matter code {data.matter_code!r}")
        try:
            check_requester(
                data.type,
                data.requester.name,
                data.requester.phone,
                anonymous=data.anonymous,
                anonymous_allowed=matter.anonymous_allowed,
            )
        except RequesterMissing as missing:
            raise InvalidInput(missing.field, missing.reason) from None
        duplicates: list[DuplicateHint] = []
        if data.requester.phone and caller.role in DUPLICATE_HINT_ROLES:
            duplicates = await _likely_duplicates(
                uow.conn,
                data.requester.phone,
                data.matter_code,
                since=now - policy.duplicate_window,
            )
        urgency: Urgency = data.urgency or matter.default_urgency
        answer = data.answer
        values = {
            "channel": channel,
            "type": data.type,
            "urgency": urgency,
            "matter_code": data.matter_code,
            "district": data.district,
            "address": data.address,
            "content": data.content,
            "requester_name": data.requester.name,
            "requester_phone": data.requester.phone,
            "anonymous": data.anonymous,
            "flagged": bool(keywords),
            "flagged_keywords": keywords or None,
            "attachments": [a.model_dump(mode="json") for a in data.attachments] or None,
            "status": Status.ANSWERED if answer else Status.REGISTERED,
            "registered_at": now,
            "registered_by": caller.sub,
            "answer": answer.text if answer else None,
            "knowledge_entry_ids": answer.knowledge_entry_ids if answer else None,
            "answered_at": now if answer else None,
            "answered_by": caller.sub if answer else None,
        }
        serial = await uow.conn.scalar(insert(tickets).values(values).returning(tickets.c.id))
        assert serial is not None
        number = ticket_number(serial, now)
        await uow.conn.execute(
            tickets.update().where(tickets.c.id == serial).values(ticket_id=number)
        )
        if terms:
            await uow.conn.execute(
                insert(ticket_terms), [{"term": t, "ticket_pk": serial} for t in terms]
            )
        if answer:
            uow.emit(
                TicketAnswered(
                    ticket_id=number,
                    answered_at=now,
                    answer=answer.text,
                    knowledge_entry_ids=answer.knowledge_entry_ids,
                    answered_by=caller.sub,
                    channel=channel,
                    type=data.type,
                    urgency=urgency,
                    matter_code=data.matter_code,
                    district=data.district,
                    registered_at=now,
                    flagged=bool(keywords),
                ).envelope(producer=PRODUCER, occurred_at=now)
            )
        else:
            uow.emit(
                TicketRegistered(
                    ticket_id=number,
                    channel=channel,
                    type=data.type,
                    urgency=urgency,
                    matter_code=data.matter_code,
                    district=data.district,
                    address=data.address,
                    content=data.content,
                    registered_at=now,
                    anonymous=data.anonymous,
                    flagged=bool(keywords),
                ).envelope(producer=PRODUCER, occurred_at=now)
            )
        if keywords:
            # Art 27: sensitive or extreme content is reported at once.
            uow.emit(
                TicketFlagged(
                    ticket_id=number,
                    flagged_at=now,
                    keywords=keywords,
                    district=data.district,
                    matter_code=data.matter_code,
                ).envelope(producer=PRODUCER, occurred_at=now)
            )
    # the registering caller sees what it just gave; no stored data is read here
    public = to_public({**values, "ticket_id": number}, full=caller.role in FULL_REQUESTER_ROLES)
    return TicketRegistration(**public.model_dump(), likely_duplicates=duplicates)


async def _likely_duplicates(
    conn: AsyncConnection, phone: str, matter_code: str, *, since: datetime
) -> list[DuplicateHint]:
    rows = (
        await conn.execute(
            select(
                tickets.c.ticket_id,
                tickets.c.status,
                tickets.c.registered_at,
                tickets.c.flagged,
                tickets.c.content,
            )
            .where(
                tickets.c.requester_phone == phone,
                tickets.c.matter_code == matter_code,
                tickets.c.registered_at >= since,
                tickets.c.ticket_id.is_not(None),
            )
            .order_by(tickets.c.flagged.desc(), tickets.c.registered_at.desc(), tickets.c.id.desc())
            .limit(MAX_DUPLICATE_HINTS)
        )
    ).all()
    return [DuplicateHint.model_validate(r._mapping) for r in rows]


async def rate_call(
    ctx: ServiceContext, caller: Caller, ticket_id: str, data: CallRatingCreate
) -> CallRatingPublic:
    """Art 14 (1): the requester's rating of the call, once, for phone tickets only."""
    if caller.role is Role.CITIZEN and data.phone is None:
        raise InvalidInput("phone", "required: the phone number the ticket was filed with")
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = (
            await uow.conn.execute(
                select(
                    tickets.c.channel,
                    tickets.c.requester_phone,
                    tickets.c.call_rating,
                    tickets.c.registered_by,
                ).where(tickets.c.ticket_id == ticket_id)
            )
        ).first()
        if row is None or (
            caller.role is Role.CITIZEN and not same_phone(row.requester_phone, data.phone or "")
        ):
            raise NotFound(NOT_YOURS.format(ticket_id=ticket_id))
        check_call_rating(row.channel, already_rated=row.call_rating is not None)
        rated = await uow.conn.execute(
            update(tickets)
            .where(tickets.c.ticket_id == ticket_id, tickets.c.call_rating.is_(None))
            .values(call_rating=data.rating, call_rated_at=now, call_rated_by=caller.sub)
        )
        if rated.rowcount == 0:  # rated by a concurrent request
            raise IllegalTransition("this call has already been rated", rule="Art 14 (1)")
        uow.emit(
            CallRated(
                ticket_id=ticket_id, operator=row.registered_by, rating=data.rating, rated_at=now
            ).envelope(producer=PRODUCER, occurred_at=now)
        )
    return CallRatingPublic(ticket_id=ticket_id, rating=data.rating, rated_at=now)
