"""The WeChat official account's server endpoint: WeChat's servers post each follower's
message here and take our answer (within 5 s) as the reply. A text becomes a
``wechat_official`` ticket, or a follow-up to the follower's open one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, select, update

from services.channels import wechat
from services.channels.domain import (
    FAILED,
    OPT_IN_REPLY,
    OPT_IN_WORDS,
    OPT_OUT_REPLY,
    OPT_OUT_WORDS,
    REGISTERING,
    WELCOME,
    MessageKind,
    Scope,
    citizen_link,
    classify_text,
    follow_up_reply,
    mobile_in,
    query_reply,
    registered_reply,
)
from services.channels.handlers.accounts import account_caller
from services.channels.handlers.intake_client import intake
from services.channels.handlers.notifications import set_opt_out, ticket_filed
from services.channels.handlers.outgoing import Reachability, reachability
from services.channels.models import accounts, channel_tickets, wechat_messages
from shared.db import insert_ignoring_duplicates
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import FollowUpReceived
from shared.logging import Outage
from shared.service import ServiceContext

log = logging.getLogger("hotline.channels.wechat")
PRODUCER = "channels"
LEASE = timedelta(seconds=60)  # a registration in flight is not retried before this
RETRY_AFTER = timedelta(seconds=30)
RETRY_POLL = timedelta(seconds=5)
MAX_ATTEMPTS = 20
NOT_TEXT = "目前仅支持文字留言，请用文字描述您的诉求。"


async def _account(ctx: ServiceContext, account_id: str) -> Any:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(accounts).where(
                    accounts.c.account_id == account_id,
                    accounts.c.scope == Scope.WECHAT.value,
                    accounts.c.revoked_at.is_(None),
                )
            )
        ).first()
    if row is None:
        raise NotFound("no such official account")
    return row


async def verify_url(ctx: ServiceContext, account_id: str, query: Mapping[str, str]) -> str:
    """服务器配置: WeChat checks the URL once with a signed ``echostr`` to echo back."""
    account = await _account(ctx, account_id)
    try:
        wechat.check_signature(
            query.get("signature"),
            account.wechat_token,
            query.get("timestamp", ""),
            query.get("nonce", ""),
        )
    except wechat.WeChatError as exc:
        raise Forbidden(str(exc)) from None
    return query.get("echostr", "")


async def receive(
    ctx: ServiceContext, account_id: str, query: Mapping[str, str], body: bytes
) -> str:
    """One message from WeChat; the answer is the passive reply (XML) or ``success``."""
    account = await _account(ctx, account_id)
    token = account.wechat_token
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    safe = query.get("encrypt_type") == "aes"
    try:
        wechat.check_signature(query.get("signature"), token, timestamp, nonce)
        fields = wechat.parse_xml(body)
        crypto = None
        if safe:
            if not account.wechat_aes_key:
                raise wechat.WeChatError("safe mode without an EncodingAESKey configured")
            encrypted = fields.get("Encrypt", "")
            wechat.check_signature(query.get("msg_signature"), token, timestamp, nonce, encrypted)
            crypto = wechat.Crypto(account.wechat_aes_key, account.wechat_app_id)
            fields = wechat.parse_xml(crypto.decrypt(encrypted))
        message = wechat.incoming(fields)
    except wechat.WeChatError as exc:
        raise Forbidden(f"not a message from WeChat: {exc}") from None
    text = await _answer(ctx, account, message)
    if text is None:
        return "success"
    reply = wechat.text_reply(
        message.from_user, message.to_user, text, int(ctx.clock.now().timestamp())
    )
    if crypto is not None:
        return wechat.encrypted_reply(crypto, token, reply, timestamp, nonce)
    return reply


async def _answer(ctx: ServiceContext, account: Any, message: wechat.Incoming) -> str | None:
    if message.msg_type == "event":
        await _record(ctx, account, message, MessageKind.EVENT, status="done")
        return WELCOME if (message.event or "").lower() == "subscribe" else None
    if message.msg_type != "text" or not (message.content or "").strip():
        return NOT_TEXT
    words = (message.content or "").strip()
    if words in OPT_OUT_WORDS or words in OPT_IN_WORDS:
        async with ctx.db.unit_of_work() as uow:
            out = words in OPT_OUT_WORDS
            await set_opt_out(ctx, uow, "wechat", message.from_user, out=out)
        return OPT_OUT_REPLY if out else OPT_IN_REPLY
    known = await _known(ctx, account.account_id, message.dedupe_key)
    if known is not None:  # WeChat retried a message we already have: the same answer
        return _answer_again(ctx, known)
    open_ticket = await _open_ticket(ctx, account.account_id, message.from_user)
    kind, content = classify_text(message.content or "", open_ticket is not None)
    if kind is MessageKind.QUERY:
        return await _query(ctx, account.account_id, message.from_user)
    if kind is MessageKind.FOLLOW_UP:
        assert open_ticket is not None
        await _record(
            ctx, account, message, kind, status="done", ticket_id=open_ticket, content=content
        )
        return follow_up_reply(open_ticket, _link(ctx, open_ticket))
    row_id, fresh = await _record(ctx, account, message, kind, status="pending", content=content)
    if not fresh:  # the same message, arrived twice at once
        return _answer_again(ctx, await _message(ctx, row_id))
    # Register now if intake answers in time; otherwise it goes on and the reply says so.
    task = asyncio.create_task(register_message(ctx, row_id))
    pending: set[asyncio.Task[Any]] = ctx.extras.setdefault("wechat_tasks", set())
    pending.add(task)
    task.add_done_callback(pending.discard)
    done, _ = await asyncio.wait({task}, timeout=ctx.settings.wechat_register_seconds)
    if not done:
        return REGISTERING
    ticket_id = task.result()
    if ticket_id is None:
        return FAILED
    return registered_reply(ticket_id, _link(ctx, ticket_id))


async def _known(ctx: ServiceContext, account_id: str, key: str) -> Any:
    async with ctx.db.engine.connect() as conn:
        return (
            await conn.execute(
                select(wechat_messages).where(
                    wechat_messages.c.account_id == account_id, wechat_messages.c.msg_key == key
                )
            )
        ).first()


def _answer_again(ctx: ServiceContext, row: Any) -> str | None:
    if row.kind == MessageKind.EVENT:
        return None
    if row.ticket_id is None:
        return FAILED if row.status == "failed" else REGISTERING
    if row.kind == MessageKind.FOLLOW_UP:
        return follow_up_reply(row.ticket_id, _link(ctx, row.ticket_id))
    return registered_reply(row.ticket_id, _link(ctx, row.ticket_id))


def _link(ctx: ServiceContext, ticket_id: str) -> str:
    return citizen_link(ctx.settings.citizen_ticket_url, ticket_id)


async def _open_ticket(ctx: ServiceContext, account_id: str, openid: str) -> str | None:
    async with ctx.db.engine.connect() as conn:
        return await conn.scalar(
            select(channel_tickets.c.ticket_id)
            .where(
                channel_tickets.c.account_id == account_id,
                channel_tickets.c.openid == openid,
                channel_tickets.c.status == "open",
            )
            .order_by(channel_tickets.c.registered_at.desc())
            .limit(1)
        )


async def _query(ctx: ServiceContext, account_id: str, openid: str) -> str:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(channel_tickets.c.ticket_id, channel_tickets.c.status)
                .where(
                    channel_tickets.c.account_id == account_id, channel_tickets.c.openid == openid
                )
                .order_by(channel_tickets.c.registered_at.desc())
                .limit(5)
            )
        ).all()
    tickets = [(r.ticket_id, r.status) for r in rows]
    return query_reply(tickets, {tid: _link(ctx, tid) for tid, _ in tickets})


async def _record(
    ctx: ServiceContext,
    account: Any,
    message: wechat.Incoming,
    kind: MessageKind,
    *,
    status: str,
    ticket_id: str | None = None,
    content: str | None = None,
) -> tuple[int, bool]:
    """Store the message once (WeChat retries it); a follow-up is told to the ticket's
    handlers in the same transaction. Returns the row id and whether it is new."""
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        inserted = await uow.conn.execute(
            insert_ignoring_duplicates(uow.conn, wechat_messages).values(
                account_id=account.account_id,
                msg_key=message.dedupe_key,
                openid=message.from_user,
                msg_type=message.msg_type,
                content=content,
                received_at=now,
                kind=kind.value,
                status=status,
                ticket_id=ticket_id,
                next_attempt_at=now + LEASE if status == "pending" else None,
            )
        )
        row_id = await uow.conn.scalar(
            select(wechat_messages.c.id).where(
                wechat_messages.c.account_id == account.account_id,
                wechat_messages.c.msg_key == message.dedupe_key,
            )
        )
        fresh = inserted.rowcount == 1
        if fresh and kind is MessageKind.FOLLOW_UP and ticket_id is not None:
            uow.emit(
                FollowUpReceived(
                    ticket_id=ticket_id,
                    channel=account.channel,
                    account_id=account.account_id,
                    content=content or "",
                    received_at=now,
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
    assert row_id is not None
    return row_id, fresh


async def _message(ctx: ServiceContext, row_id: int) -> Any:
    async with ctx.db.engine.connect() as conn:
        return (
            await conn.execute(select(wechat_messages).where(wechat_messages.c.id == row_id))
        ).one()


async def register_message(ctx: ServiceContext, row_id: int) -> str | None:
    """File the message as a ticket through intake, as the official account. Returns the
    ticket number, or None when it could not (yet) be registered."""
    message = await _message(ctx, row_id)
    if message.status != "pending":
        return message.ticket_id  # type: ignore[no-any-return]
    account = await _fetch_account(ctx, message.account_id)
    phone = mobile_in(message.content or "")
    body: dict[str, Any] = {
        "type": account.default_type or "consultation",
        "matter_code": account.default_matter_code or "OTHER-001",
        "district": account.default_district or "120101",
        "content": (message.content or "")[:4000],
        "requester": {"phone": phone} if phone else {},
    }
    try:
        answer = await intake(ctx).call(account_caller(account), "POST", "/tickets", json=body)
    except httpx.HTTPError as exc:
        _intake(ctx).tried("intake", str(row_id), None, f"{type(exc).__name__}: {exc}")
        await _retry_later(ctx, row_id, repr(exc))
        return None
    status = answer.status_code
    _intake(ctx).tried("intake", str(row_id), status, None if status < 300 else f"HTTP {status}")
    if answer.status_code == 201:
        ticket_id: str = answer.json()["ticket_id"]
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(
                update(wechat_messages)
                .where(wechat_messages.c.id == row_id)
                .values(status="done", ticket_id=ticket_id, next_attempt_at=None)
            )
            await ticket_filed(
                ctx,
                uow,
                ticket_id=ticket_id,
                account_id=account.account_id,
                channel=account.channel,
                openid=message.openid,
                phone=phone,
            )
        return ticket_id
    if answer.status_code >= 500:
        await _retry_later(ctx, row_id, f"intake answered {answer.status_code}")
        return None
    # a refusal (the account's defaults no longer valid): retrying would not help
    detail = answer.text[:500]
    log.warning("wechat message refused by intake", extra={"status": answer.status_code})
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            update(wechat_messages)
            .where(wechat_messages.c.id == row_id)
            .values(status="failed", last_error=detail, next_attempt_at=None)
        )
    return None


def _intake(ctx: ServiceContext) -> Reachability:
    """Intake unreachable while messages wait to be filed: logged when that starts and ends."""

    def make() -> Reachability:
        return Reachability(log, "wechat ticket registration", "service", "messages")

    return reachability(ctx, "wechat", make)


async def _fetch_account(ctx: ServiceContext, account_id: str) -> Any:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(select(accounts).where(accounts.c.account_id == account_id))
        ).first()
    if row is None:
        raise InvalidInput("account_id", f"no account {account_id}")
    return row


async def _retry_later(ctx: ServiceContext, row_id: int, error: str) -> None:
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        attempts = await uow.conn.scalar(
            select(wechat_messages.c.attempts).where(wechat_messages.c.id == row_id)
        )
        attempts = (attempts or 0) + 1
        gives_up = attempts >= MAX_ATTEMPTS
        await uow.conn.execute(
            update(wechat_messages)
            .where(wechat_messages.c.id == row_id)
            .values(
                attempts=attempts,
                last_error=error[:500],
                status="failed" if gives_up else "pending",
                next_attempt_at=None if gives_up else now + RETRY_AFTER * attempts,
            )
        )


async def retry_pending(ctx: ServiceContext) -> None:
    """Background loop: messages whose registration did not finish in time are filed
    later (the follower asks for the number with 查询). A database outage is waited out
    with back-off, logged when it starts and when it ends."""
    outage = Outage(log, "wechat registration retries")
    while True:
        now = ctx.clock.now()
        try:
            claimed = await _claim_pending(ctx, now)
        except Exception:  # noqa: BLE001 - the loop outlives a database outage
            await asyncio.sleep(outage.failed())
            continue
        outage.ok()
        for row_id in claimed:
            try:
                await register_message(ctx, row_id)
            except Exception:  # noqa: BLE001 - one bad message must not stop the loop
                log.exception("wechat registration retry failed", extra={"message": row_id})
        if not claimed:
            await ctx.clock.sleep_until(now + RETRY_POLL)


async def _claim_pending(ctx: ServiceContext, now: Any) -> list[int]:
    """The messages due for another try, leased (another instance skips them)."""
    async with ctx.db.unit_of_work() as uow:
        due = (
            await uow.conn.execute(
                select(wechat_messages.c.id, wechat_messages.c.next_attempt_at)
                .where(
                    wechat_messages.c.status == "pending",
                    wechat_messages.c.next_attempt_at <= now,
                )
                .limit(50)
            )
        ).all()
        claimed = []
        for row in due:  # claim: another instance skips what this one took
            taken = await uow.conn.execute(
                update(wechat_messages)
                .where(
                    and_(
                        wechat_messages.c.id == row.id,
                        wechat_messages.c.next_attempt_at == row.next_attempt_at,
                    )
                )
                .values(next_attempt_at=now + LEASE)
            )
            if taken.rowcount:
                claimed.append(row.id)
    return claimed
