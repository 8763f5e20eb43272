"""Channel accounts: created and revoked by the admin, each with its own API key (kept
only as a hash) and the identity it acts under behind the gateway."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update

from services.channels.domain import (
    Scope,
    check_account,
    derived_secret,
    hash_api_key,
    new_api_key,
    role_for,
)
from services.channels.models import accounts
from services.channels.schemas import (
    AccountCreate,
    AccountCreated,
    AccountPublic,
    AccountsPublic,
    ApiKeyIdentity,
)
from shared.auth import Caller, Role
from shared.errors import IllegalTransition, InvalidInput, NotFound, Unauthorized
from shared.service import ServiceContext

SIGNING_PURPOSE = "account"


def wechat_path(account_id: str) -> str:
    return f"/wechat/{account_id}"


def to_public(row: Any) -> AccountPublic:
    return AccountPublic(
        account_id=row.account_id,
        name=row.name,
        scope=row.scope,
        channel=row.channel,
        unit_id=row.unit_id,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        wechat_app_id=row.wechat_app_id,
        wechat_server_path=wechat_path(row.account_id) if row.scope == Scope.WECHAT else None,
    )


def account_caller(row: Any) -> Caller:
    """Who the account is when it (or its adapter) calls another service."""
    return Caller(
        sub=f"account:{row.account_id}",
        role=Role(role_for(Scope(row.scope))),
        unit_id=row.unit_id,
        name=row.name,
        channel=row.channel,
    )


def signing_secret(ctx: ServiceContext, account_id: str) -> str:
    return derived_secret(ctx.settings.channels_secret, SIGNING_PURPOSE, account_id)


async def create_account(
    ctx: ServiceContext, caller: Caller, data: AccountCreate
) -> AccountCreated:
    channel = check_account(data.scope, data.channel, data.unit_id)
    if data.scope is Scope.WECHAT and data.wechat is None:
        raise InvalidInput("wechat", "required for a WeChat official account: app_id and token")
    if data.scope is not Scope.WECHAT and data.wechat is not None:
        raise InvalidInput("wechat", "only a WeChat official account has a WeChat configuration")
    account_id = uuid.uuid4().hex[:16]
    key = new_api_key()
    now = ctx.clock.now()
    values = {
        "account_id": account_id,
        "name": data.name,
        "scope": data.scope.value,
        "channel": channel,
        "unit_id": data.unit_id,
        "key_hash": hash_api_key(key),
        "key_prefix": key[:10],
        "created_at": now,
        "created_by": caller.sub,
        "default_matter_code": data.default_matter_code,
        "default_district": data.default_district,
        "default_type": data.default_type,
        "wechat_app_id": data.wechat.app_id if data.wechat else None,
        "wechat_token": data.wechat.token if data.wechat else None,
        "wechat_aes_key": data.wechat.encoding_aes_key if data.wechat else None,
    }
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(insert(accounts).values(values))
        row = (
            await uow.conn.execute(select(accounts).where(accounts.c.account_id == account_id))
        ).one()
    return AccountCreated(
        **to_public(row).model_dump(), api_key=key, signing_secret=signing_secret(ctx, account_id)
    )


async def list_accounts(ctx: ServiceContext, limit: int, offset: int) -> AccountsPublic:
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(accounts))
        rows = (
            await conn.execute(
                select(accounts)
                .order_by(accounts.c.created_at, accounts.c.account_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return AccountsPublic(data=[to_public(r) for r in rows], count=count or 0)


async def get_account(ctx: ServiceContext, account_id: str) -> Any:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(select(accounts).where(accounts.c.account_id == account_id))
        ).first()
    if row is None:
        raise NotFound(f"no channel account {account_id}")
    return row


async def revoke_account(ctx: ServiceContext, caller: Caller, account_id: str) -> AccountPublic:
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        done = await uow.conn.execute(
            update(accounts)
            .where(accounts.c.account_id == account_id, accounts.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=caller.sub)
        )
        row = (
            await uow.conn.execute(select(accounts).where(accounts.c.account_id == account_id))
        ).first()
    if row is None:
        raise NotFound(f"no channel account {account_id}")
    if done.rowcount == 0:
        raise IllegalTransition(f"account {account_id} was revoked already")
    return to_public(row)


async def identify(ctx: ServiceContext, api_key: str) -> ApiKeyIdentity:
    """The account a key belongs to; 401 for an unknown or revoked key."""
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(accounts).where(
                    accounts.c.key_hash == hash_api_key(api_key), accounts.c.revoked_at.is_(None)
                )
            )
        ).first()
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    who = account_caller(row)
    return ApiKeyIdentity(
        account_id=row.account_id,
        name=row.name,
        role=who.role.value,
        channel=row.channel,
        unit_id=row.unit_id,
    )


def account_of(caller: Caller) -> str:
    """The account behind a caller that came in with an API key."""
    if not caller.sub.startswith("account:"):
        raise Unauthorized("this call is for channel accounts: send the account's X-Api-Key")
    return caller.sub.removeprefix("account:")
