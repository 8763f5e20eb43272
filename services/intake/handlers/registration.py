"""Commands: register a ticket (Art 5), answer it on the spot (Art 6), flag sensitive
content (Art 27), hint at duplicates, and record the call rating (Art 14 (1))."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import EllipsisType
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, TypeAdapter
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
from services.intake.handlers.queries import FULL_REQUESTER_ROLES, NOT_YOURS, public_fields
from services.intake.models import (
    idempotency_keys,
    matters,
    numbered,
    requester_reads,
    ticket_terms,
    ticket_words,
    tickets,
)
from services.intake.schemas import (
    CallRatingCreate,
    CallRatingPublic,
    DuplicateHint,
    TicketCreate,
    TicketRegistration,
)
from services.intake.sealed import PHONE_INDEX, key_ring, phone_index, seal_requester
from shared.audit import append_chained, lock_chain
from shared.auth import Caller, Role
from shared.batching import GroupCommit
from shared.db import (
    UnitOfWork,
    insert_ignoring_duplicates,
    joined_payloads,
    joined_texts,
    split_payloads_sql,
    split_texts_sql,
)
from shared.detectors import mask_personal_data
from shared.errors import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
    is_database_outage,
)
from shared.events import (
    CallRated,
    Channel,
    Event,
    Outgoing,
    TicketAnswered,
    TicketFlagged,
    TicketRegistered,
    Urgency,
    topic_for,
)
from shared.events.base import event_id_text, orjson_time
from shared.logging import trace_id_var
from shared.replays import NONCE_KEY, REPLAY, insert_nonces_sql
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
    nonce: str | None = None,
) -> bytes:
    """Register a request and emit its events, in one transaction; returns the answer's
    JSON (``answer_json``: ``TicketRegistration``'s, written once).

    A consultation answered on the spot emits only ``ticket.answered`` (never
    ``ticket.registered``), so dispatch never sees it and no SLA clock starts for it.
    Sensitive content adds ``ticket.flagged`` after the ticket's first event.

    ``nonce``: the request's nonce, when its route leaves recording it to this handler
    (shared/replays.py). A batch writes it in the registration's own transaction and
    refuses a replay there; wherever no batch writes it (one by one, a refusal, the answer
    to an Idempotency-Key used before) it is recorded on its own before the answer."""
    if nonce is not None and registration_batches(ctx) is None:
        await _record_nonce(ctx, nonce)
        nonce = None
    try:
        return await _register_ticket(ctx, caller, data, idempotency_key, nonce)
    except (Unauthorized, Unavailable):
        # a replay the write refused; or the database went away, nothing was registered
        # and the retry is a request of its own
        raise
    except Exception:
        if nonce is not None:  # a replay of a refused request is told it is one
            await _record_nonce(ctx, nonce)
        raise


async def _record_nonce(ctx: ServiceContext, nonce: str) -> None:
    if ctx.nonces is not None:
        await ctx.nonces.record(nonce)


async def _register_ticket(
    ctx: ServiceContext,
    caller: Caller,
    data: TicketCreate,
    idempotency_key: str | None,
    nonce: str | None,
) -> bytes:
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
    request_hash: str | None = None
    if idempotency_key is not None:
        request_hash = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
        first = await _first_answer(ctx, caller, idempotency_key, request_hash)
        if first is not None:
            if nonce is not None:
                await _record_nonce(ctx, nonce)
            return first
    registering = _Registering(
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
        trace_id_var.get(),
        nonce,
    )
    batches = registration_batches(ctx)
    if batches is not None:
        return await _register_in_batch(ctx, batches, registering)
    number: str | None = None
    try:
        return await _register(ctx, registering)
    except _KeyTaken:  # a concurrent request with this key committed first
        first = await _first_answer(ctx, caller, idempotency_key or "", request_hash or "")
        assert first is not None
        return first
    except Exception as exc:
        number = getattr(exc, "ticket_number", None)
        if not is_database_outage(exc):
            raise
        if number is not None:
            # The connection broke after the ticket was written: if the commit got through,
            # the caller gets its ticket, never a 503 that a retry would file twice.
            registration: bytes | None = getattr(exc, "registration", None)
            if registration is not None and await _committed(ctx, number):
                return registration
        raise Unavailable("the database is unavailable; nothing was registered") from exc


class _KeyTaken(Exception):
    pass


async def _register(ctx: ServiceContext, registering: _Registering) -> bytes:
    """One registration in a transaction of its own (SQLite, or batching turned off)."""
    caller, data, now = registering.caller, registering.data, registering.now
    idempotency_key, request_hash = registering.idempotency_key, registering.request_hash
    number: str | None = None
    registration: bytes | None = None
    ring = key_ring(ctx)
    try:
        async with ctx.db.unit_of_work() as uow:
            number, registration = await _write(
                uow,
                ring,
                caller,
                data,
                registering.channel,
                registering.policy,
                registering.matter,
                registering.keywords,
                registering.terms,
                now,
            )
            if idempotency_key is not None:
                stored = await uow.conn.execute(
                    insert_ignoring_duplicates(uow.conn, idempotency_keys).values(
                        caller=caller.sub,
                        key=idempotency_key,
                        request_hash=request_hash,
                        ticket_id=number,
                        # the answer holds the requester in full: sealed like the ticket
                        response=ring.seal(registration.decode(), ANSWER_FIELD),
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
) -> tuple[str, bytes]:
    """The ticket, its terms and its events, in the caller's transaction: its number and
    its answer's JSON."""
    duplicates: list[DuplicateHint] = []
    if hints_duplicates(caller, data):
        duplicates = await _likely_duplicates(
            uow.conn,
            phone_index(ring, data.requester.phone),
            data.matter_code,
            since=now - policy.duplicate_window,
        )
        # Art 28, 29: showing a person's other tickets is a read of their data
        await append_chained(uow.conn, requester_reads, hint_reads(caller, duplicates, now))
    values = ticket_values(ring, caller, data, channel, matter, keywords, now)
    number = await _insert_ticket(uow.conn, values, terms, now)
    uow.emit(*ticket_events(number, values, data, keywords))
    return number, answer_json(number, values, caller, data, duplicates)


def hints_duplicates(caller: Caller, data: TicketCreate) -> bool:
    """Whether the answer shows the phone's earlier tickets (to the hotline's staff)."""
    return bool(data.requester.phone) and caller.role in DUPLICATE_HINT_ROLES


def hint_reads(
    caller: Caller, duplicates: Sequence[DuplicateHint], now: datetime
) -> list[dict[str, Any]]:
    """The requester-read audit rows of showing ``duplicates`` (Art 28, 29)."""
    return [
        {
            "ticket_id": hint.ticket_id,
            "reader": caller.sub,
            "reader_role": caller.role.value,
            "read_at": now,
            "purpose": "duplicate hint",
        }
        for hint in duplicates
    ]


def ticket_values(
    ring: KeyRing,
    caller: Caller,
    data: TicketCreate,
    channel: Channel,
    matter: _Matter,
    keywords: list[str],
    now: datetime,
) -> dict[str, Any]:
    """The ticket's stored columns (all but its serial and number)."""
    urgency: Urgency = data.urgency or matter.default_urgency
    answer = data.answer
    return {
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


def ticket_events(
    number: str,
    values: dict[str, Any],
    data: TicketCreate,
    keywords: list[str],
    trace_id: str | None | EllipsisType = ...,
) -> list[Outgoing]:
    """The events of a registration, in order: ``ticket.answered`` (answered on the spot)
    or ``ticket.registered``, then ``ticket.flagged`` for sensitive content; under
    ``trace_id`` (the one in force unless given: a batch gives each its request's)."""
    now: datetime = values["registered_at"]
    # the ticket's facts as stored: each event model takes its fields of them (an event
    # ignores what it does not carry)
    facts = {**values, "ticket_id": number}
    first: Event
    if data.answer:
        first = TicketAnswered.of(facts)
    else:
        # Art 28, 29: the copies leaving intake carry no phone, ID or card number
        facts["content"] = mask_personal_data(data.content)
        first = TicketRegistered.of(facts)
    events = [
        first.outgoing(producer=PRODUCER, occurred_at=now, ticket_id=number, trace_id=trace_id)
    ]
    if keywords:
        # Art 27: sensitive or extreme content is reported at once.
        flagged = TicketFlagged.of(
            {
                "ticket_id": number,
                "flagged_at": now,
                "keywords": keywords,
                "district": data.district,
                "matter_code": data.matter_code,
            },
        )
        events.append(
            flagged.outgoing(
                producer=PRODUCER, occurred_at=now, ticket_id=number, trace_id=trace_id
            )
        )
    return events


def registered_json(
    number: str, values: Mapping[str, Any], content: str, trace_id: str | None
) -> tuple[str, bytes] | None:
    """A new ``ticket.registered`` event's id and its envelope's JSON, the bytes
    ``ticket_events`` writes of the same registration (its first event, without an answer),
    written at once from the ticket's stored columns (``ticket_values``: the body's validated
    fields, the catalog's urgency, the channel its account may file on), without the event's
    own model and envelope (a batch's plain registrations, ~4 of ~7 us a ticket;
    tests/unit/intake/test_registered_json.py holds the two to the same bytes).
    ``content``: as given (masked here, Art 28, 29). None when the values hold what the
    event's model would refuse or write otherwise (a time without its zone, a value JSON
    cannot write): the models' way then."""
    at = values["registered_at"]
    if at.utcoffset() is None or not (trace_id is None or type(trace_id) is str):
        return None
    event_id = event_id_text()
    time_json = orjson_time(at)
    try:
        raw = orjson.dumps(
            {
                "event_id": event_id,
                "type": TicketRegistered.TYPE,
                "version": TicketRegistered.VERSION,
                "occurred_at": time_json,
                "ticket_id": number,
                "producer": PRODUCER,
                "trace_id": trace_id,
                # TicketRegistered's fields, in its order (_REGISTERED_FIELDS)
                "payload": {
                    "ticket_id": number,
                    "channel": values["channel"],
                    "type": values["type"],
                    "urgency": values["urgency"],
                    "matter_code": values["matter_code"],
                    "district": values["district"],
                    "address": values["address"],
                    # Art 28, 29: the copies leaving intake carry no phone, ID or card number
                    "content": mask_personal_data(content),
                    "registered_at": time_json,
                    "anonymous": values["anonymous"],
                    "flagged": values["flagged"],
                },
            },
            option=orjson.OPT_UTC_Z,
        )
    except orjson.JSONEncodeError:  # (a lone surrogate in a text)
        return None
    return event_id, raw


_REGISTERED_FIELDS = (
    "ticket_id",
    "channel",
    "type",
    "urgency",
    "matter_code",
    "district",
    "address",
    "content",
    "registered_at",
    "anonymous",
    "flagged",
)
_REGISTERED_TOPIC = topic_for(TicketRegistered.TYPE)


def registration_answer(
    number: str,
    values: dict[str, Any],
    caller: Caller,
    data: TicketCreate,
    duplicates: list[DuplicateHint],
) -> TicketRegistration:
    """What the registering caller is answered, as the route's response model: what it just
    gave (no stored data is read here), with the duplicate hints it may see."""
    # what TicketRegistration(**public) validates, without spreading the fields as keyword
    # arguments to be gathered again (a third of its time)
    answer: TicketRegistration = TicketRegistration.__pydantic_validator__.validate_python(
        _answer_fields(number, values, caller, data, duplicates)
    )
    return answer


def answer_json(
    number: str,
    values: dict[str, Any],
    caller: Caller,
    data: TicketCreate,
    duplicates: list[DuplicateHint],
) -> bytes:
    """``registration_answer``'s JSON, the bytes the route's response model writes of it
    (what FastAPI answered), written at once from its fields: the model is neither made nor
    written (~5 + ~2.5 us a ticket). The route answers these bytes, and a first request with
    an Idempotency-Key keeps them (sealed) for its retries. tests/unit/intake/
    test_answer_json.py holds the two to the same bytes; what orjson cannot write as the
    model would (a lone surrogate in a text) goes the model's way."""
    public = _answer_fields(number, values, caller, data, duplicates)
    public["registered_at"] = orjson_time(public["registered_at"])
    answered = public["answer"]
    if answered is not None:
        public["answer"] = orjson.Fragment(_model_json(answered))
    if duplicates:
        public["likely_duplicates"] = [orjson.Fragment(_model_json(d)) for d in duplicates]
    try:
        return orjson.dumps(public, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return _ANSWER_JSON(registration_answer(number, values, caller, data, duplicates))


def _answer_fields(
    number: str,
    values: dict[str, Any],
    caller: Caller,
    data: TicketCreate,
    duplicates: list[DuplicateHint],
) -> dict[str, Any]:
    """The answer's fields, in ``TicketRegistration``'s order."""
    requester = data.requester
    given = {
        "requester_name": requester.name,
        "requester_phone": requester.phone,
        "requester_id_number": requester.id_number,
    }
    public = public_fields(
        {**values, **given, "ticket_id": number}, full=caller.role in FULL_REQUESTER_ROLES
    )
    public["likely_duplicates"] = duplicates
    return public


# how the route's response model writes its answer (and a model in it)
_ANSWER_JSON = TypeAdapter(TicketRegistration).serializer.to_json


def _model_json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


async def _first_answer(
    ctx: ServiceContext, caller: Caller, key: str, request_hash: str
) -> bytes | None:
    """The answer a first request with this caller's ``key`` got, if there was one: the
    same bytes."""
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
        return (key_ring(ctx).open(row.response, ANSWER_FIELD) or "").encode()
    # kept from before intake_0007
    return _ANSWER_JSON(TicketRegistration.model_validate(row.response))


async def _committed(ctx: ServiceContext, number: str, attempts: int = 10) -> bool:
    """Whether ticket ``number`` is stored, asked on fresh connections for a few seconds
    (the database may be coming back). False when it is not, or cannot be told."""
    for attempt in range(attempts):
        try:
            async with ctx.db.engine.connect() as conn:
                found = await conn.scalar(select(tickets.c.id).where(numbered(number)))
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


@dataclass
class _Matters:
    """The catalog's matters as intake last heard of them (``_matter``)."""

    known: dict[str, _Matter] = field(default_factory=dict)
    read_at: float = float("-inf")
    # the requests that find them stale together wait for one re-read, not one each
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def stale(self) -> bool:
        return time.monotonic() - self.read_at > MATTER_REFRESH_SECONDS


def _matters(ctx: ServiceContext) -> _Matters:
    cache: _Matters | None = ctx.extras.get(MATTER_CACHE)
    if cache is None:
        cache = ctx.extras[MATTER_CACHE] = _Matters()
    return cache


async def _matter(ctx: ServiceContext, code: str) -> _Matter | None:
    """The catalog's matters as intake last heard of them, kept in memory (read by every
    registration) and re-read every few seconds or when this process stores a change."""
    cache = _matters(ctx)
    if cache.stale():
        async with cache.reading:
            if cache.stale():  # not re-read meanwhile by a request that waited before
                async with ctx.db.engine.connect() as conn:
                    rows = (await conn.execute(select(matters))).all()
                cache.known = {
                    r.code: _Matter(r.active, r.anonymous_allowed, r.default_urgency) for r in rows
                }
                cache.read_at = time.monotonic()
    known = cache.known
    if code not in known:  # unknown here: perhaps just published (another instance heard it)
        async with ctx.db.engine.connect() as conn:
            r = (await conn.execute(select(matters).where(matters.c.code == code))).first()
        if r is None:
            return None
        known[code] = _Matter(r.active, r.anonymous_allowed, r.default_urgency)
    return known[code]


def forget_matters(ctx: ServiceContext) -> None:
    _matters(ctx).read_at = float("-inf")


async def _insert_ticket(
    conn: AsyncConnection, values: dict[str, Any], terms: Collection[str], now: datetime
) -> str:
    """Insert the ticket and its search terms; returns its number. On PostgreSQL one
    statement does all three (serial, number, the terms' row in ``ticket_words``); SQLite
    takes three (the terms a row each in ``ticket_terms``)."""
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
                insert(ticket_words)
                .from_select(
                    ["ticket_pk", "terms"],
                    select(
                        inserted.c.id,
                        literal(sorted(terms), type_=postgresql.ARRAY(Text)),
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
                _matter_as_hinted(conn) == matter_code,
                tickets.c.registered_at >= since,
                tickets.c.ticket_id.is_not(None),
            )
            .order_by(tickets.c.flagged.desc(), tickets.c.registered_at.desc(), tickets.c.id.desc())
            .limit(MAX_DUPLICATE_HINTS)
        )
    ).all()
    return [duplicate_hint(r._mapping) for r in rows]


def _matter_as_hinted(conn: AsyncConnection) -> Any:
    """The matter as the hint lookups compare it: on PostgreSQL in the "C" collation of
    ``ix_tickets_phone_matter`` (intake_0017), which the matter's own index cannot serve,
    so the phone's index is the lookup's only one (the same tickets: equal codes are equal
    bytes)."""
    if conn.dialect.name == "postgresql":
        return tickets.c.matter_code.collate("C")
    return tickets.c.matter_code


def duplicate_hint(row: Mapping[Any, Any]) -> DuplicateHint:
    """An earlier ticket as a hint: what it was about, not the numbers written in it."""
    return DuplicateHint.model_validate({**row, "content": mask_personal_data(row["content"])})


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
                ).where(numbered(ticket_id))
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
            .where(numbered(ticket_id), tickets.c.call_rating.is_(None))
            .values(call_rating=data.rating, call_rated_at=now, call_rated_by=caller.sub)
        )
        if rated.rowcount == 0:  # rated by a concurrent request
            raise IllegalTransition("this call has already been rated", rule="Art 14 (1)")
        uow.emit(
            CallRated(
                ticket_id=ticket_id, operator=row.registered_by, rating=data.rating, rated_at=now
            ).outgoing(producer=PRODUCER, occurred_at=now)
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


# --- group commit (PostgreSQL): concurrent registrations written together ---------------


class _Registering(NamedTuple):
    """A registration validated by its request, waiting for its batch's write (a named
    tuple: made for every ticket, in a quarter of a frozen dataclass's time)."""

    caller: Caller
    data: TicketCreate
    channel: Channel
    policy: IntakePolicy
    matter: _Matter
    keywords: list[str]
    terms: Collection[str]
    now: datetime
    idempotency_key: str | None
    request_hash: str | None  # the body's digest, kept with an Idempotency-Key only
    # the request's trace id: the batch is written under its first request's context, but
    # each ticket's events carry the trace of the request that registered it
    trace_id: str | None = None
    # the request's nonce, recorded in the batch's write (shared/replays.py)
    nonce: str | None = None


class _Lost(Exception):
    """The database went away during the batch's write; ``number`` and ``registration``
    are set when the ticket may have been committed all the same."""

    def __init__(
        self, cause: BaseException, number: str | None, registration: bytes | None
    ) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.number = number
        self.registration = registration


BATCHES = "intake_registration_batches"


def registration_batches(
    ctx: ServiceContext,
) -> GroupCommit[_Registering, bytes] | None:
    """The service's group commit of registrations: on PostgreSQL with
    ``intake_batch_size`` > 0 (SQLite writes one registration at a time)."""
    found = ctx.extras.get(BATCHES)
    if found is None:
        if not ctx.db.is_postgres or ctx.settings.intake_batch_size <= 0:
            found = ctx.extras[BATCHES] = False
        else:

            async def flush(items: Sequence[_Registering]) -> list[Any]:
                return await _write_batch(ctx, items)

            found = ctx.extras[BATCHES] = GroupCommit(
                flush,
                max_batch=ctx.settings.intake_batch_size,
                max_in_flight=max(1, ctx.settings.intake_batch_in_flight),
                # two registrations with one key never share a write: the later one
                # waits for the first, then answers with its ticket
                conflict=lambda r: (
                    (r.caller.sub, r.idempotency_key) if r.idempotency_key is not None else None
                ),
                name="intake registrations",
            )
            ctx.batches.append(found)
    return found if isinstance(found, GroupCommit) else None


async def _register_in_batch(
    ctx: ServiceContext,
    batches: GroupCommit[_Registering, bytes],
    registering: _Registering,
) -> bytes:
    try:
        return await batches.submit(registering)
    except _KeyTaken:  # a concurrent request with this key committed first
        first = await _first_answer(
            ctx,
            registering.caller,
            registering.idempotency_key or "",
            registering.request_hash or "",
        )
        assert first is not None
        return first
    except _Lost as lost:
        # as one by one: if the commit got through, the caller gets its ticket, never a
        # 503 that a retry would file twice
        if (
            lost.number is not None
            and lost.registration is not None
            and await _committed(ctx, lost.number)
        ):
            return lost.registration
        raise Unavailable("the database is unavailable; nothing was registered") from lost.cause


async def _write_batch(ctx: ServiceContext, items: Sequence[_Registering]) -> list[Any]:
    """Write ``items`` together; one result per item (its registration, ``_KeyTaken``,
    ``_Lost``, or the error that failed it alone). A batch that fails for another reason
    than an outage is written again one by one, so one bad ticket fails only itself."""
    firsts = _first_of_each_nonce(items)
    if len(firsts) < len(items):  # every use of a nonce after its first is a replay
        first_uses = iter(await _write_batch(ctx, [items[i] for i in firsts]))
        return [
            next(first_uses) if i in firsts else Unauthorized(REPLAY) for i in range(len(items))
        ]
    try:
        return await _write_together(ctx, items)
    except _BatchLost as lost:
        written = lost.written or []
        return [
            _Lost(lost.cause, *(written[i] if i < len(written) else (None, None)))
            for i in range(len(items))
        ]
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        log.warning("a batch of %d registrations failed; writing them one by one", len(items))
        results: list[Any] = []
        for item in items:
            results.extend(await _write_batch(ctx, [item]))
        return results


def _first_of_each_nonce(items: Sequence[_Registering]) -> set[int]:
    """The items that carry no nonce or the first use of theirs in ``items``."""
    seen: set[str] = set()
    firsts = set()
    for i, item in enumerate(items):
        if item.nonce is None or item.nonce not in seen:
            firsts.add(i)
        if item.nonce is not None:
            seen.add(item.nonce)
    return firsts


class _BatchLost(Exception):
    def __init__(self, cause: BaseException, written: list[tuple[str, bytes]] | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.written = written


async def _write_together(ctx: ServiceContext, items: Sequence[_Registering]) -> list[Any]:
    """One statement for the whole batch: it looks up the duplicate hints to show, inserts
    the Idempotency-Keys (ON CONFLICT DO NOTHING), the tickets whose key was new or who have
    none, their search terms and their outbox events; it runs in a transaction of its own,
    so nothing else is needed to commit. The serials come from ``_SerialPool`` (one round
    trip for many batches). A ticket with hints to show is held back from that statement
    and written by a second one, with its hints in its answer and the requester-read audit
    rows of showing them in the same transaction (Art 28, 29)."""
    ring = key_ring(ctx)
    recording = ctx.nonces is not None
    prepared: list[tuple[str, bytes]] | None = None
    # the stored columns (sealed requester, phone index) before the connection is taken;
    # the hints are looked up by the phone index computed here
    values = [
        ticket_values(
            ring, item.caller, item.data, item.channel, item.matter, item.keywords, item.now
        )
        for item in items
    ]
    try:
        async with ctx.db.driver_connection() as (conn, raw):
            serials = await _serial_pool(ctx).take(raw, len(items))
            rows = _BatchRows()
            prepared = [
                rows.add(ring, item, values[i], serials[i], [], looks_up=True)
                for i, item in enumerate(items)
            ]
            answered = await _first_write(raw, rows, recording)
            duplicates = _hints(answered)
            if duplicates:
                held = _BatchRows()
                for i, found in duplicates.items():
                    prepared[i] = held.add(ring, items[i], values[i], serials[i], found)
                async with conn.begin():
                    await lock_chain(conn, requester_reads)
                    again = await raw.fetch(held.statement(recording), *held.arguments(recording))
                    shown = _written(again)
                    await append_chained(
                        conn,
                        requester_reads,
                        [
                            read
                            for i, found in duplicates.items()
                            if serials[i] in shown
                            for read in hint_reads(items[i].caller, found, items[i].now)
                        ],
                    )
                answered = [*answered, *again]
    except Exception as exc:
        if is_database_outage(exc):
            raise _BatchLost(exc, prepared) from exc
        raise
    written = _written(answered)
    fresh = {r["nonce"] for r in answered if r["nonce"] is not None}
    if written:
        ctx.db.events_written.set()
    return [
        registration
        if serial in written
        else Unauthorized(REPLAY)
        if item.nonce is not None and item.nonce not in fresh
        else _KeyTaken()
        for item, (_, registration), serial in zip(items, prepared, serials, strict=True)
    ]


async def _first_write(raw: Any, rows: _BatchRows, recording: bool) -> Any:
    """The batch's statement, run in a transaction of its own. Recording nonces, it takes
    them for new (a plain insert: ``insert_nonces_sql``'s ``all_new``); a batch holding one
    recorded before fails on the nonces' key, wrote nothing, and runs again with ON CONFLICT
    DO NOTHING, which tells which were new."""
    arguments = rows.arguments(recording)
    if not recording:
        return await raw.fetch(rows.statement(False), *arguments)
    try:
        return await raw.fetch(_WRITE_NEW_NONCES[rows.keyed], *arguments)
    except Exception as exc:
        if getattr(exc, "constraint_name", None) != NONCE_KEY:
            raise
    return await raw.fetch(rows.statement(True), *arguments)


def _written(answered: Sequence[Mapping[str, Any]]) -> set[int]:
    """The serials of the tickets the batch statement wrote."""
    return {r["id"] for r in answered if r["id"] is not None}


def _hints(answered: Sequence[Mapping[str, Any]]) -> dict[int, list[DuplicateHint]]:
    """The duplicate hints the batch statement found, by item (its place in the batch):
    the tickets it held back."""
    rows = sorted(
        (r for r in answered if r["ord"] is not None),
        key=lambda r: (r["ord"], not r["flagged"], -r["registered_at"].timestamp(), -r["earlier"]),
    )
    found: dict[int, list[DuplicateHint]] = {}
    for r in rows:
        found.setdefault(r["ord"] - 1, []).append(
            duplicate_hint(
                {
                    "ticket_id": r["ticket_id"],
                    "status": r["status"],
                    "registered_at": r["registered_at"],
                    "flagged": r["flagged"],
                    "content": r["content"],
                }
            )
        )
    return found


SERIALS = "intake_ticket_serials"
# the sequence looked up once a call (MATERIALIZED: not pulled into the rows, where it was
# looked up for each serial, ~2.7 of its ~3 us), not once a serial
_TAKE_SERIALS = (
    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('tickets', 'id')::regclass AS seq)"
    " SELECT nextval(s.seq) FROM s, generate_series(1, $1)"
)


class _SerialPool:
    """Ticket serials taken from the sequence ahead of their batches, ``ahead`` in one
    round trip: a batch's statement needs its tickets' numbers (in their events and in the
    sealed answers to Idempotency-Keys) before it runs. Like any sequence's numbers, those
    a stopping process has not used are skipped."""

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.free: deque[int] = deque()

    async def take(self, raw: Any, n: int) -> list[int]:
        if len(self.free) < n:
            self.free.extend(r[0] for r in await raw.fetch(_TAKE_SERIALS, max(n, self.ahead)))
        return [self.free.popleft() for _ in range(n)]


def _serial_pool(ctx: ServiceContext) -> _SerialPool:
    pool: _SerialPool | None = ctx.extras.get(SERIALS)
    if pool is None:
        pool = ctx.extras[SERIALS] = _SerialPool(max(1, ctx.settings.intake_batch_size))
    return pool


# the tickets' columns as the batch statement takes them: each as an array, and each but
# the serial and the number also as one value, which a batch whose tickets all hold the
# same value there (a channel account's, no answer, no attachments) sends instead of
# an array of copies (the driver checks and encodes every element of an array)
_TICKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "bigint"),
    ("ticket_id", "text"),
    ("channel", "text"),
    ("type", "text"),
    ("urgency", "text"),
    ("matter_code", "text"),
    ("district", "text"),
    ("address", "text"),
    ("content", "text"),
    ("requester_name_sealed", "text"),
    ("requester_phone_sealed", "text"),
    ("requester_id_number_sealed", "text"),
    ("requester_phone_index", "text"),
    ("anonymous", "boolean"),
    ("flagged", "boolean"),
    ("flagged_keywords", "json"),
    ("attachments", "json"),
    ("status", "text"),
    ("registered_at", "timestamptz"),
    ("registered_by", "text"),
    ("answer", "text"),
    ("knowledge_entry_ids", "json"),
    ("answered_at", "timestamptz"),
    ("answered_by", "text"),
)
# what else the statement takes of each ticket, alike: its search terms (one string, None
# without any) and its request's nonce
_GIVEN_COLUMNS: tuple[tuple[str, str], ...] = (("terms", "text"), ("nonce", "text"))
_COLUMNS = _TICKET_COLUMNS + _GIVEN_COLUMNS
_PER_TICKET = frozenset({"id", "ticket_id"})  # never the same in two tickets
_SHARED_COLUMNS = tuple((c, kind) for c, kind in _COLUMNS if c not in _PER_TICKET)


def _write_batch_sql(nonces: bool, all_new: bool = False, keyed: bool = True) -> str:
    """The batch's one statement; with ``nonces`` it also records the requests' nonces
    (shared/replays.py) and writes a request's key and ticket only where its nonce was new
    (``all_new``: taking every nonce for new, failing on one recorded before). With
    ``keyed`` it inserts the batch's Idempotency-Keys and writes a keyed ticket only where
    its key was new; a batch without a key goes without (``_BatchRows.keyed``): the keys'
    insert, empty, still cost PostgreSQL an executor node, a table open and a trigger-free
    insert's start and end a call.
    It returns the serials of the tickets written, the nonces that were new and the
    duplicate hints found; a ticket with hints is held back (neither it, nor its key, nor
    its nonce written): its answer shows them, so it is written again with them.

    Each part unnests the tickets' arrays it reads itself (one array, one parameter, read
    by several parts): what one part can tell from a ticket's columns (its events' key, its
    words' serial, the nonces to record) is not sent again."""
    n = len(_COLUMNS)

    def sql_type(kind: str) -> str:
        return "text" if kind == "json" else kind

    array = {c: _array(i + 1, kind) for i, (c, kind) in enumerate(_COLUMNS)}
    # a shared column's array is empty when its value comes as one (``_BatchRows``):
    # unnest pads it with NULLs, which the value replaces (itself NULL otherwise)
    shared = {c: f"${n + 1 + i}::{sql_type(kind)}" for i, (c, kind) in enumerate(_SHARED_COLUMNS)}

    def tickets_as(alias: str, *columns: str) -> str:
        """The tickets as rows ``alias(columns…, ord)`` (the first column one of each
        ticket's own, so that no array of one value cuts the rows short)."""
        assert columns[0] in _PER_TICKET
        arrays = ", ".join(array[c] for c in columns)
        return f"unnest({arrays}) WITH ORDINALITY AS {alias}({', '.join(columns)}, ord)"

    def column(alias: str, name: str) -> str:
        given = _time(f"{alias}.{name}") if name in _TIMES else f"{alias}.{name}"
        return f"coalesce({given}, {shared[name]})" if name in shared else given

    stored = [c for c, _ in _TICKET_COLUMNS]
    selected = ", ".join(
        column("t", c) + ("::json" if kind == "json" else "") for c, kind in _TICKET_COLUMNS
    )
    o = n + len(shared) + 1  # outbox: each event's serial, id, topic, payload; the topic alike;
    # created_at
    # hints: each ticket's phone index (None: none shown), matter, since; how many at most
    # (their own arrays: a lookup comparing the index's columns with expressions of the
    # tickets' arrays got a generic plan on the matter's index when planned on a near-empty
    # table, and read every ticket of the matter from then on; with plain arrays too, at
    # ~0.01 cost units from the phone's: so the matter is compared in the "C" collation of
    # the phone's index (intake_0017), which the matter's own index cannot serve)
    h = o + 6
    r = h + 4  # nonces: when they were recorded
    # keys (last: a statement without them takes the parameters before them): caller, key,
    # request_hash, ticket number, response, created_at; with nonces each key's
    k = r + 1 if nonces else r
    key_nonces, key_nonce = (f", {_array(k + 6, 'text')}", ", nonce") if nonces else ("", "")

    def fresh(nonce: str) -> str:
        return f" AND ({nonce} IS NULL OR {nonce} IN (SELECT nonce FROM nonces))" if nonces else ""

    not_held = "ticket_id NOT IN (SELECT ticket_id FROM held)"
    return (
        "WITH hinted AS ("
        " SELECT q.ord, d.id, d.ticket_id, d.status, d.registered_at, d.flagged, d.content"
        f" FROM unnest({_array(h, 'text')}, {_array(h + 1, 'text')},"
        f" {_array(h + 2, 'timestamptz')})"
        " WITH ORDINALITY AS q(phone, matter, since, ord)"
        " CROSS JOIN LATERAL (SELECT id, ticket_id, status, registered_at, flagged, content"
        ' FROM tickets WHERE requester_phone_index = q.phone AND matter_code COLLATE "C" = q.matter'
        f" AND registered_at >= {_time('q.since')} AND ticket_id IS NOT NULL"
        f" ORDER BY flagged DESC, registered_at DESC, id DESC LIMIT ${h + 3}) AS d"
        # each phone first probed in the phone's index (an index-only scan, no sort, no
        # limit: most phones have no earlier ticket, and the probe is all their lookup
        # costs, bench/intake_statement.py); OFFSET 0 keeps it a probe for each phone, not a
        # semi-join, which a generic plan made on an empty table ran as a scan of the table
        " WHERE q.phone IS NOT NULL AND EXISTS (SELECT FROM tickets"
        " WHERE requester_phone_index = q.phone OFFSET 0)),"
        # the tickets held back for their hints (with their nonces)
        f" held AS (SELECT t.ticket_id, {column('t', 'nonce')} AS nonce"
        f" FROM {tickets_as('t', 'ticket_id', 'nonce')}"
        " WHERE t.ord IN (SELECT ord FROM hinted)), "
        + (
            "nonces AS ("
            + insert_nonces_sql(
                f"(SELECT {column('u', 'nonce')} AS nonce, ${r}::float8 AS seen_at"
                f" FROM {tickets_as('u', 'id', 'nonce')}) AS n",
                where="n.nonce IS NOT NULL"
                " AND n.nonce NOT IN (SELECT nonce FROM held WHERE nonce IS NOT NULL)",
                all_new=all_new,
            )
            + "), "
            if nonces
            else ""
        )
        # keys in one order in every batch: two batches (instances) never wait for each
        # other's keys in opposite orders
        + (
            "keys AS ("
            " INSERT INTO idempotency_keys (caller, key, request_hash, ticket_id, response,"
            " created_at)"
            " SELECT k.caller, k.key, k.hash, k.ticket_id, k.response::json, k.created_at"
            f" FROM unnest({', '.join(_array(k + i, 'text') for i in range(5))},"
            f" ${k + 5}::timestamptz[]{key_nonces})"
            f" AS k(caller, key, hash, ticket_id, response, created_at{key_nonce})"
            f" WHERE k.{not_held}" + fresh("k.nonce") + " ORDER BY k.caller, k.key"
            " ON CONFLICT DO NOTHING RETURNING ticket_id), "
            if keyed
            else ""
        )
        # a ticket without a key, or whose key was new
        + "new AS ("
        f" INSERT INTO tickets ({', '.join(stored)})"
        f" SELECT {selected} FROM {tickets_as('t', *stored, 'nonce')}"
        # (the keys' numbers in a subquery: split once, not for every ticket)
        + (
            f" WHERE (t.ticket_id NOT IN (SELECT unnest({_array(k + 3, 'text')}))"
            " OR t.ticket_id IN (SELECT ticket_id FROM keys)) AND"
            if keyed
            else " WHERE"
        )
        + f" t.{not_held}"
        + fresh(column("t", "nonce"))
        + " RETURNING id, ticket_id),"
        # a ticket's events, keyed by its number (``Envelope.key``), in the order made
        " events AS ("
        " INSERT INTO outbox (event_id, topic, key, payload, created_at, attempts)"
        f" SELECT e.event_id, coalesce(e.topic, ${o + 4}::text), new.ticket_id,"
        f" e.payload, ${o + 5}::timestamptz, 0"
        f" FROM unnest(${o}::bigint[], {_array(o + 1, 'text')}, {_array(o + 2, 'text')},"
        f" {split_payloads_sql(f'${o + 3}::bytea')})"
        " WITH ORDINALITY AS e(serial, event_id, topic, payload, ord)"
        " JOIN new ON new.id = e.serial ORDER BY e.ord),"
        # a ticket's words as one string, split again here: one array element per ticket,
        # not per word (a word never holds a space: search_terms' runs of text hold none)
        " words AS ("
        " INSERT INTO ticket_words (ticket_pk, terms)"
        f" SELECT w.id, string_to_array({column('w', 'terms')}, ' ')"
        f" FROM {tickets_as('w', 'id', 'terms')}"
        f" WHERE {column('w', 'terms')} IS NOT NULL AND w.id IN (SELECT id FROM new))"
        # the tickets written, (with nonces) the nonces that were new, the hints found
        " SELECT id, NULL::text AS nonce, NULL::bigint AS ord, NULL::bigint AS earlier,"
        " NULL::text AS ticket_id, NULL::text AS status, NULL::timestamptz AS registered_at,"
        " NULL::boolean AS flagged, NULL::text AS content FROM new"
        + (
            " UNION ALL SELECT NULL, nonce, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM nonces"
            if nonces
            else ""
        )
        + " UNION ALL SELECT NULL, NULL, ord, id, ticket_id, status, registered_at, flagged,"
        " content FROM hinted"
    )


_JOINED = frozenset({"text", "json", "timestamptz"})  # (JSON as its text; times below)
# the columns whose arrays hold times: sent as the texts of their microseconds since the
# epoch (``_epoch_us``), read by ``_time``. The driver encodes a time in an array at ~1.2 us
# (an abc check, then the time's conversion in Python calls); its text costs ~0.3 us here
# and ~0.07 us in PostgreSQL, which casts an ISO time's text at ~0.4 us (bench/intake_batch.py)
_TIMES = frozenset(c for c, kind in _COLUMNS if kind == "timestamptz")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _array(number: int, kind: str) -> str:
    """The statement's parameter ``$number``: the values of a column of ``kind`` as an
    array. Texts go as one text (``joined_texts``, split again here): the driver checks
    and encodes an array element by element, in Python, a text at once. Times go as the
    texts of their microseconds (``bigint[]``, each read by ``_time``)."""
    if kind == "timestamptz":
        return f"{split_texts_sql(f'${number}::text')}::bigint[]"
    return split_texts_sql(f"${number}::text") if kind in _JOINED else f"${number}::{kind}[]"


def _time(microseconds: str) -> str:
    """The time of an element of a times' array (``_array``): exact (a bigint of
    microseconds is a float8 exactly below 2^53, past the year 2255)."""
    return f"('epoch'::timestamptz + {microseconds} * interval '1 microsecond')"


def _epoch_us(times: Sequence[datetime | None]) -> list[str | None]:
    """Times (aware) as the texts ``_array`` reads: their microseconds since the epoch."""
    return [None if t is None else str((t - _EPOCH) // _MICROSECOND) for t in times]


# by (nonces, keyed)
_WRITE_BATCH = {
    (nonces, keyed): _write_batch_sql(nonces, keyed=keyed)
    for nonces in (False, True)
    for keyed in (False, True)
}
# a batch's first try, recording its nonces (``_first_write``), by keyed
_WRITE_NEW_NONCES = {
    keyed: _write_batch_sql(True, all_new=True, keyed=keyed) for keyed in (False, True)
}


class _BatchRows:
    """The batch statement's arrays, filled item by item."""

    def __init__(self) -> None:
        # each ticket's columns, in ``_COLUMNS``' order (``arguments`` turns them into the
        # columns' arrays at once)
        self.tickets: list[tuple[Any, ...]] = []
        self.keys: list[list[Any]] = [[] for _ in range(6)]
        self.key_nonces: list[str | None] = []
        self.events: list[list[Any]] = [[], [], [], []]  # serial, id, topic, payload
        # each ticket's hints to look up: its phone index (None: none), matter, since
        self.looks: list[list[Any]] = [[], [], []]

    def add(
        self,
        ring: KeyRing,
        item: _Registering,
        values: dict[str, Any],
        serial: int,
        duplicates: list[DuplicateHint],
        looks_up: bool = False,
    ) -> tuple[str, bytes]:
        """``values``: the item's ``ticket_values``; ``looks_up``: the statement looks up
        the item's duplicate hints, if it shows them (and holds it back if it finds any).
        Returns the item's number and answer (``answer_json``)."""
        number = ticket_number(serial, item.now)
        registration = answer_json(number, values, item.caller, item.data, duplicates)
        self.tickets.append(
            (
                serial,
                number,
                *_STORED_OF(values),
                # in byte order (UTF-8's is the code points'), as the words' GIN index
                # sorts a row's keys: given sorted, PostgreSQL's sort of them finds them so
                # at once (bench/gin_words.py: ~5 us of PostgreSQL a ticket less, ~2 here)
                " ".join(sorted(item.terms)) if item.terms else None,
                item.nonce,
            )
        )
        shows = looks_up and hints_duplicates(item.caller, item.data)
        self.looks[0].append(values[PHONE_INDEX] if shows else None)
        self.looks[1].append(item.data.matter_code)
        self.looks[2].append(item.now - item.policy.duplicate_window)
        if item.idempotency_key is not None:
            self.key_nonces.append(item.nonce)
            # the answer holds the requester in full: sealed like the ticket
            sealed = ring.seal(registration.decode(), ANSWER_FIELD)
            for column, value in zip(
                self.keys,
                (
                    item.caller.sub,
                    item.idempotency_key,
                    item.request_hash,
                    number,
                    json.dumps(sealed),
                    item.now,
                ),
                strict=True,
            ):
                column.append(value)
        serials, ids, topics, payloads = self.events
        registered = (
            None
            if item.keywords or item.data.answer
            else registered_json(number, values, item.data.content, item.trace_id)
        )
        if registered is not None:  # (nearly every ticket)
            serials.append(serial)
            ids.append(registered[0])
            topics.append(_REGISTERED_TOPIC)
            payloads.append(registered[1])
            return number, registration
        for envelope in ticket_events(number, values, item.data, item.keywords, item.trace_id):
            serials.append(serial)
            ids.append(envelope.id_text)
            topics.append(envelope.topic)
            # the payload as its UTF-8 bytes, joined and read as texts by the statement
            # (as Database.write_outbox sends them): not decoded here to be encoded again
            payloads.append(envelope.to_json())
        return number, registration

    @property
    def keyed(self) -> bool:
        """Whether an item carries an Idempotency-Key (the statement then inserts them)."""
        return bool(self.key_nonces)

    def statement(self, nonces: bool) -> str:
        """The statement these rows go to (``arguments``), taking nonces for new or not."""
        return _WRITE_BATCH[nonces, self.keyed]

    def arguments(self, nonces: bool) -> list[Any]:
        """The statement's arguments (``statement``: ``_WRITE_BATCH[nonces, self.keyed]``,
        ``_WRITE_NEW_NONCES[self.keyed]``)."""
        arrays: list[Any] = []
        alike: list[Any] = []  # a shared column's one value (then its array is empty)
        column: Sequence[Any]
        for (json_values, shared, joined, times), column in zip(
            _SENDING, zip(*self.tickets, strict=True), strict=True
        ):
            if json_values:  # as SQLAlchemy's JSON type writes it (None: null)
                column = tuple("null" if v is None else json.dumps(v) for v in column)
            if shared:
                column, value = _unless_alike(column)
                alike.append(value)
            if times:
                column = _epoch_us(column)
            arrays.append(joined_texts(column) if joined else list(column))
        serials, ids, topics, payloads = self.events
        sent_topics, topic = _unless_alike(topics)
        events = [
            serials,
            joined_texts(ids),
            joined_texts(sent_topics),
            joined_payloads(payloads),
            topic,
        ]
        phones, matters, since = self.looks
        looks = [
            joined_texts(phones),
            joined_texts(matters),
            joined_texts(_epoch_us(since)),
            MAX_DUPLICATE_HINTS,
        ]
        written = [*arrays, *alike, *events, datetime.now(UTC), *looks]
        if nonces:
            written.append(time.time())
        if self.keyed:
            caller, key, request_hash, number, response, created_at = self.keys
            written.extend(map(joined_texts, (caller, key, request_hash, number, response)))
            written.append(created_at)
            if nonces:
                written.append(joined_texts(self.key_nonces))
        return written


# a ticket's stored columns but its serial and number, from its ``ticket_values``
_STORED_OF = itemgetter(*(c for c, _ in _TICKET_COLUMNS if c not in _PER_TICKET))
# how ``arguments`` sends each column of ``_COLUMNS``: (its values are JSON, it may go as
# one value, its values go as one text, they are times)
_SENDING = tuple(
    (kind == "json", c not in _PER_TICKET, kind in _JOINED, kind == "timestamptz")
    for c, kind in _COLUMNS
)


def _unless_alike(column: Sequence[Any]) -> tuple[Sequence[Any], Any]:
    """``column`` as the statement takes it: ([], the value) when all its values are alike,
    else (the values, None)."""
    if column and column.count(column[0]) == len(column):
        return [], column[0]
    return column, None
