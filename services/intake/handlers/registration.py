"""Commands: register a ticket (Art 5), answer it on the spot (Art 6), flag sensitive
content (Art 27), hint at duplicates, and record the call rating (Art 14 (1))."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain import (
    IntakePolicy,
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
    ticket_number_prefix,
)
from services.intake.handlers.policy import current_policy
from services.intake.handlers.queries import FULL_REQUESTER_ROLES, NOT_YOURS, to_public
from services.intake.models import (
    idempotency_keys,
    matters,
    requester_reads,
    ticket_terms,
    tickets,
)
from services.intake.schemas import (
    CallRatingCreate,
    CallRatingPublic,
    DuplicateHint,
    TicketCreate,
    TicketRegistration,
)
from services.intake.sealed import key_ring, phone_index, seal_requester
from shared.audit import append_chained
from shared.auth import Caller, Role
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.detectors import mask_personal_data
from shared.errors import IllegalTransition, InvalidInput, NotFound, Unavailable, is_database_outage
from shared.events import (
    CallRated,
    Channel,
    TicketAnswered,
    TicketFlagged,
    TicketRegistered,
    Urgency,
)
from shared.sealing import KeyRing
from shared.service import ServiceContext

PRODUCER = "intake"
# Art 6: the hotline's operator answers on the spot, nobody else.
ANSWERING_ROLES = (Role.OPERATOR,)
# Earlier tickets of a phone number are shown only to the hotline's own staff: a channel
# client could type anyone's number (Art 28).
DUPLICATE_HINT_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})
MAX_DUPLICATE_HINTS = 10
MATTER_CACHE = "intake_matters"
MATTER_REFRESH_SECONDS = 5.0
IDEMPOTENCY_PRUNE_SECONDS = 600.0
ANSWER_FIELD = "idempotency_keys.response"
log = logging.getLogger("hotline.intake")


async def register_ticket(
    ctx: ServiceContext,
    caller: Caller,
    data: TicketCreate,
    idempotency_key: str | None = None,
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
    matter = await _matter(ctx, data.matter_code)
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
    request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    if idempotency_key is not None:
        first = await _first_answer(ctx, caller, idempotency_key, request_hash)
        if first is not None:
            return first
    number: str | None = None
    try:
        return await _register(
            ctx,
            caller,
            data,
            channel,
            policy,
            matter,
            keywords,
            terms,
            now,
            idempotency_key,
            request_hash,
        )
    except _KeyTaken:  # a concurrent request with this key committed first
        first = await _first_answer(ctx, caller, idempotency_key or "", request_hash)
        assert first is not None
        return first
    except Exception as exc:
        number = getattr(exc, "ticket_number", None)
        if not is_database_outage(exc):
            raise
        if number is not None:
            # The connection broke after the ticket was written: if the commit got through,
            # the caller gets its ticket, never a 503 that a retry would file twice.
            registration: TicketRegistration | None = getattr(exc, "registration", None)
            if registration is not None and await _committed(ctx, number):
                return registration
        raise Unavailable("the database is unavailable; nothing was registered") from exc


class _KeyTaken(Exception):
    pass


async def _register(
    ctx: ServiceContext,
    caller: Caller,
    data: TicketCreate,
    channel: Channel,
    policy: IntakePolicy,
    matter: _Matter,
    keywords: list[str],
    terms: Collection[str],
    now: datetime,
    idempotency_key: str | None,
    request_hash: str,
) -> TicketRegistration:
    number: str | None = None
    registration: TicketRegistration | None = None
    ring = key_ring(ctx)
    try:
        async with ctx.db.unit_of_work() as uow:
            registration = await _write(
                uow, ring, caller, data, channel, policy, matter, keywords, terms, now
            )
            number = registration.ticket_id
            if idempotency_key is not None:
                stored = await uow.conn.execute(
                    insert_ignoring_duplicates(uow.conn, idempotency_keys).values(
                        caller=caller.sub,
                        key=idempotency_key,
                        request_hash=request_hash,
                        ticket_id=number,
                        # the answer holds the requester in full: sealed like the ticket
                        response=ring.seal(registration.model_dump_json(), ANSWER_FIELD),
                        created_at=now,
                    )
                )
                if stored.rowcount == 0:
                    raise _KeyTaken
    except Exception as exc:
        exc.ticket_number = number  # type: ignore[attr-defined]
        exc.registration = registration  # type: ignore[attr-defined]
        raise
    assert registration is not None
    return registration


async def _write(
    uow: UnitOfWork,
    ring: KeyRing,
    caller: Caller,
    data: TicketCreate,
    channel: Channel,
    policy: IntakePolicy,
    matter: _Matter,
    keywords: list[str],
    terms: Collection[str],
    now: datetime,
) -> TicketRegistration:
    """The ticket, its terms and its events, in the caller's transaction."""
    duplicates: list[DuplicateHint] = []
    if data.requester.phone and caller.role in DUPLICATE_HINT_ROLES:
        duplicates = await _likely_duplicates(
            uow.conn,
            phone_index(ring, data.requester.phone),
            data.matter_code,
            since=now - policy.duplicate_window,
        )
        # Art 28, 29: showing a person's other tickets is a read of their data
        await append_chained(
            uow.conn,
            requester_reads,
            [
                {
                    "ticket_id": hint.ticket_id,
                    "reader": caller.sub,
                    "reader_role": caller.role.value,
                    "read_at": now,
                    "purpose": "duplicate hint",
                }
                for hint in duplicates
            ],
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
        **seal_requester(ring, data.requester.name, data.requester.phone, data.requester.id_number),
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
    number = await _insert_ticket(uow.conn, values, terms, now)
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
                # Art 28, 29: the copies leaving intake carry no phone, ID or card number
                content=mask_personal_data(data.content),
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
    given = {
        "requester_name": data.requester.name,
        "requester_phone": data.requester.phone,
        "requester_id_number": data.requester.id_number,
    }
    public = to_public(
        {**values, **given, "ticket_id": number}, full=caller.role in FULL_REQUESTER_ROLES
    )
    return TicketRegistration(**public.model_dump(), likely_duplicates=duplicates)


async def _first_answer(
    ctx: ServiceContext, caller: Caller, key: str, request_hash: str
) -> TicketRegistration | None:
    """The answer a first request with this caller's ``key`` got, if there was one."""
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
                    idempotency_keys.c.caller == caller.sub, idempotency_keys.c.key == key
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise InvalidInput("Idempotency-Key", "already used for a different request; use a new key")
    if isinstance(row.response, str):
        return TicketRegistration.model_validate_json(
            key_ring(ctx).open(row.response, ANSWER_FIELD) or ""
        )
    return TicketRegistration.model_validate(row.response)  # kept from before intake_0007


async def _committed(ctx: ServiceContext, number: str, attempts: int = 10) -> bool:
    """Whether ticket ``number`` is stored, asked on fresh connections for a few seconds
    (the database may be coming back). False when it is not, or cannot be told."""
    for attempt in range(attempts):
        try:
            async with ctx.db.engine.connect() as conn:
                found = await conn.scalar(select(tickets.c.id).where(tickets.c.ticket_id == number))
            return found is not None
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
    return False


@dataclass(frozen=True)
class _Matter:
    active: bool
    anonymous_allowed: bool
    default_urgency: Urgency


async def _matter(ctx: ServiceContext, code: str) -> _Matter | None:
    """The catalog's matters as intake last heard of them, kept in memory (read by every
    registration) and re-read every few seconds or when this process stores a change."""
    cached: tuple[float, dict[str, _Matter]] | None = ctx.extras.get(MATTER_CACHE)
    if cached is None or time.monotonic() - cached[0] > MATTER_REFRESH_SECONDS:
        async with ctx.db.engine.connect() as conn:
            rows = (await conn.execute(select(matters))).all()
        found = {r.code: _Matter(r.active, r.anonymous_allowed, r.default_urgency) for r in rows}
        cached = (time.monotonic(), found)
        ctx.extras[MATTER_CACHE] = cached
    known = cached[1]
    if code not in known:  # unknown here: perhaps just published (another instance heard it)
        async with ctx.db.engine.connect() as conn:
            r = (await conn.execute(select(matters).where(matters.c.code == code))).first()
        if r is None:
            return None
        known[code] = _Matter(r.active, r.anonymous_allowed, r.default_urgency)
    return known[code]


def forget_matters(ctx: ServiceContext) -> None:
    ctx.extras.pop(MATTER_CACHE, None)


async def _insert_ticket(
    conn: AsyncConnection, values: dict[str, Any], terms: Collection[str], now: datetime
) -> str:
    """Insert the ticket and its search terms; returns its number. On PostgreSQL one
    statement does all three (serial, number, terms); SQLite takes three."""
    if conn.dialect.name == "postgresql":
        serial = select(func.nextval(func.pg_get_serial_sequence("tickets", "id")).label("id")).cte(
            "serial"
        )
        digits = cast(serial.c.id, Text)
        numbered = literal(ticket_number_prefix(now)) + func.lpad(
            digits, func.greatest(6, func.length(digits)), "0"
        )
        columns = list(values)
        row = insert(tickets).from_select(
            ["id", "ticket_id", *columns],
            select(
                serial.c.id,
                numbered,
                *[literal(values[c], type_=tickets.c[c].type) for c in columns],
            ),
        )
        inserted = row.returning(tickets.c.id, tickets.c.ticket_id).cte("inserted")
        query = select(inserted.c.ticket_id)
        if terms:
            query = query.add_cte(
                insert(ticket_terms)
                .from_select(
                    ["term", "ticket_pk"],
                    select(
                        func.unnest(literal(sorted(terms), type_=postgresql.ARRAY(Text))),
                        inserted.c.id,
                    ),
                )
                .cte("terms")
            )
        found = await conn.scalar(query)
        assert found is not None
        return str(found)
    pk = await conn.scalar(insert(tickets).values(values).returning(tickets.c.id))
    assert pk is not None
    number = ticket_number(pk, now)
    await conn.execute(tickets.update().where(tickets.c.id == pk).values(ticket_id=number))
    if terms:
        await conn.execute(insert(ticket_terms), [{"term": t, "ticket_pk": pk} for t in terms])
    return number


async def _likely_duplicates(
    conn: AsyncConnection, phone_digest: str | None, matter_code: str, *, since: datetime
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
                tickets.c.requester_phone_index == phone_digest,
                tickets.c.matter_code == matter_code,
                tickets.c.registered_at >= since,
                tickets.c.ticket_id.is_not(None),
            )
            .order_by(tickets.c.flagged.desc(), tickets.c.registered_at.desc(), tickets.c.id.desc())
            .limit(MAX_DUPLICATE_HINTS)
        )
    ).all()
    # the hint shows what the earlier ticket was about, not the numbers written in it
    return [
        DuplicateHint.model_validate({**r._mapping, "content": mask_personal_data(r.content)})
        for r in rows
    ]


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
                    tickets.c.requester_phone_index,
                    tickets.c.call_rating,
                    tickets.c.registered_by,
                ).where(tickets.c.ticket_id == ticket_id)
            )
        ).first()
        if row is None or (
            caller.role is Role.CITIZEN
            and not same_phone(row.requester_phone_index, phone_index(key_ring(ctx), data.phone))
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


async def prune_idempotency_keys(ctx: ServiceContext, once: bool = False) -> None:
    """Background: forget Idempotency-Keys older than their retention period (a retry
    after that files a new ticket)."""
    keep = timedelta(hours=ctx.settings.idempotency_retention_hours)
    while True:
        try:
            async with ctx.db.engine.begin() as conn:
                await conn.execute(
                    delete(idempotency_keys).where(
                        idempotency_keys.c.created_at < ctx.clock.now() - keep
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - tried again at the next interval
            log.warning("pruning idempotency keys failed; retrying later", exc_info=True)
        if once:
            return
        await asyncio.sleep(IDEMPOTENCY_PRUNE_SECONDS)
