"""The phone system (CTI/IVR): calls started, answered and ended, the caller's earlier
tickets for the operator who answers (an audited read), and the IVR's key-press rating
after the call, which becomes the Art 14 (1) call rating."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import insert, select, update

from services.channels.domain import check_signature, ivr_rating
from services.channels.handlers.accounts import account_caller, account_of, signing_secret
from services.channels.handlers.intake_client import intake
from services.channels.handlers.notifications import ticket_filed
from services.channels.models import accounts, caller_history_reads, calls
from services.channels.schemas import (
    CallAnswered,
    CallEnded,
    CallerHistory,
    CallPublic,
    CallRated,
    CallStarted,
)
from shared.auth import Caller
from shared.db import UnitOfWork, insert_ignoring_duplicates
from shared.errors import DomainError, Forbidden, IllegalTransition, NotFound
from shared.events import CallEnded as CallEndedEvent
from shared.service import ServiceContext

PRODUCER = "channels"
HISTORY_LIMIT = 20


class UpstreamError(DomainError):
    status = 502
    title = "Bad gateway"


async def _cti_account(
    ctx: ServiceContext, caller: Caller, signature: str | None, body: bytes
) -> Any:
    account_id = account_of(caller)
    async with ctx.db.engine.connect() as conn:
        account = (
            await conn.execute(select(accounts).where(accounts.c.account_id == account_id))
        ).first()
    if account is None or account.scope != "cti" or account.revoked_at is not None:
        raise Forbidden("only a phone system's account reports calls")
    check_signature(signing_secret(ctx, account_id), signature, body, ctx.clock.now())
    return account


def _public(row: Any) -> CallPublic:
    return CallPublic(
        call_id=row.call_id,
        caller=row.caller_number,
        started_at=row.started_at,
        answered_at=row.answered_at,
        agent=row.agent,
        ended_at=row.ended_at,
        ticket_id=row.ticket_id,
        rating=row.rating,
        rated_at=row.rated_at,
    )


async def _call(conn: Any, account_id: str, call_id: str) -> Any:
    row = (
        await conn.execute(
            select(calls).where(calls.c.account_id == account_id, calls.c.call_id == call_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no call {call_id}")
    return row


async def call_started(
    ctx: ServiceContext, caller: Caller, signature: str | None, body: bytes, data: CallStarted
) -> CallPublic:
    account = await _cti_account(ctx, caller, signature, body)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            insert_ignoring_duplicates(uow.conn, calls).values(
                account_id=account.account_id,
                call_id=data.call_id,
                caller_number="".join(ch for ch in data.caller if ch.isdigit()),
                started_at=now,
            )
        )
        row = await _call(uow.conn, account.account_id, data.call_id)
    return _public(row)


async def call_answered(
    ctx: ServiceContext, caller: Caller, signature: str | None, body: bytes, data: CallAnswered
) -> CallPublic:
    account = await _cti_account(ctx, caller, signature, body)
    async with ctx.db.unit_of_work() as uow:
        await _call(uow.conn, account.account_id, data.call_id)
        await uow.conn.execute(
            update(calls)
            .where(
                calls.c.account_id == account.account_id,
                calls.c.call_id == data.call_id,
                calls.c.answered_at.is_(None),
            )
            .values(answered_at=ctx.clock.now(), agent=data.agent)
        )
        row = await _call(uow.conn, account.account_id, data.call_id)
    return _public(row)


async def call_ended(
    ctx: ServiceContext, caller: Caller, signature: str | None, body: bytes, data: CallEnded
) -> CallPublic:
    account = await _cti_account(ctx, caller, signature, body)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        before = await _call(uow.conn, account.account_id, data.call_id)
        ticket_id = before.ticket_id or data.ticket_id
        ended = await uow.conn.execute(
            update(calls)
            .where(
                calls.c.account_id == account.account_id,
                calls.c.call_id == data.call_id,
                calls.c.ended_at.is_(None),
            )
            .values(ended_at=now, ticket_id=ticket_id)
        )
        if ticket_id is not None:
            await _tie(ctx, uow, before, ticket_id)
        if ended.rowcount:  # the first report of the end, not a repeat
            uow.emit(
                CallEndedEvent(
                    call_id=data.call_id,
                    account_id=account.account_id,
                    ticket_id=ticket_id,
                    started_at=before.started_at,
                    answered_at=before.answered_at,
                    ended_at=now,
                    agent=before.agent,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
        row = await _call(uow.conn, account.account_id, data.call_id)
    return _public(row)


async def call_rated(
    ctx: ServiceContext, caller: Caller, signature: str | None, body: bytes, data: CallRated
) -> CallPublic:
    """Idempotent by call: a repeated key press report changes nothing; intake records the
    rating once (Art 14 (1)), on the caller's own phone ticket."""
    account = await _cti_account(ctx, caller, signature, body)
    rating = ivr_rating(data.key)
    async with ctx.db.engine.connect() as conn:
        call = await _call(conn, account.account_id, data.call_id)
    if call.rating is not None:
        if call.rating != rating:
            raise IllegalTransition("this call has already been rated", rule="Art 14 (1)")
        return _public(call)
    ticket_id = call.ticket_id or data.ticket_id
    if ticket_id is None:
        raise IllegalTransition("no ticket is linked to this call: link it first")
    try:
        answer = await intake(ctx).call(
            account_caller(account),
            "POST",
            f"/tickets/{ticket_id}/call-rating",
            json={"rating": rating, "phone": call.caller_number},
        )
    except httpx.HTTPError as exc:
        raise UpstreamError("intake is unreachable: send the rating again") from exc
    already = answer.status_code == 409 and "already been rated" in answer.text
    if answer.status_code == 404:
        raise NotFound(f"ticket {ticket_id} was not filed from this caller's number")
    if answer.status_code != 201 and not already:
        raise UpstreamError(
            f"intake refused the rating ({answer.status_code}): {answer.text[:300]}"
        )
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            update(calls)
            .where(
                calls.c.account_id == account.account_id,
                calls.c.call_id == data.call_id,
                calls.c.rating.is_(None),
            )
            .values(rating=rating, rated_at=ctx.clock.now(), ticket_id=ticket_id)
        )
        row = await _call(uow.conn, account.account_id, data.call_id)
    return _public(row)


async def _latest_call(conn: Any, call_id: str) -> Any:
    row = (
        await conn.execute(
            select(calls).where(calls.c.call_id == call_id).order_by(calls.c.started_at.desc())
        )
    ).first()
    if row is None:
        raise NotFound(f"no call {call_id}")
    return row


async def link_ticket(
    ctx: ServiceContext, caller: Caller, call_id: str, ticket_id: str
) -> CallPublic:
    """The operator ties the ticket registered during the call to it (for the rating)."""
    async with ctx.db.unit_of_work() as uow:
        call = await _latest_call(uow.conn, call_id)
        if call.ticket_id not in (None, ticket_id):
            raise IllegalTransition(f"call {call_id} is linked to {call.ticket_id} already")
        await uow.conn.execute(
            update(calls)
            .where(calls.c.account_id == call.account_id, calls.c.call_id == call_id)
            .values(ticket_id=ticket_id)
        )
        await _tie(ctx, uow, call, ticket_id)
        row = await _call(uow.conn, call.account_id, call_id)
    return _public(row)


async def _tie(ctx: ServiceContext, uow: UnitOfWork, call: Any, ticket_id: str) -> None:
    """The caller hears of their ticket (its number, then its progress) by SMS."""
    await ticket_filed(
        ctx,
        uow,
        ticket_id=ticket_id,
        account_id=call.account_id,
        channel="phone",
        phone=call.caller_number,
    )


async def caller_history(ctx: ServiceContext, caller: Caller, call_id: str) -> CallerHistory:
    """The caller's earlier tickets, for the operator who answered; every look is recorded
    (Art 28, 29), and intake records the requester search on its side too."""
    async with ctx.db.engine.connect() as conn:
        call = await _latest_call(conn, call_id)
    try:
        answer = await intake(ctx).call(
            caller,
            "GET",
            "/tickets",
            params={"requester_phone": call.caller_number, "limit": HISTORY_LIMIT},
        )
    except httpx.HTTPError as exc:
        raise UpstreamError("intake is unreachable") from exc
    if answer.status_code != 200:
        raise UpstreamError(f"intake answered {answer.status_code}: {answer.text[:300]}")
    found = answer.json()
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            insert(caller_history_reads).values(
                account_id=call.account_id,
                call_id=call_id,
                reader=caller.sub,
                reader_role=caller.role.value,
                read_at=ctx.clock.now(),
                tickets=[t["ticket_id"] for t in found["data"]],
            )
        )
    return CallerHistory(call_id=call_id, tickets=found["data"], count=found["count"])
