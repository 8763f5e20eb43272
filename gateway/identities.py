"""Identities in the gateway's own schema (issue 9): users with their role and binding (a
unit, an industry for an authority, a district), passwords hashed with argon2id (pwdlib;
the older PBKDF2 hashes are upgraded at the next sign-in), sign-in sessions with rotating
refresh tokens, and a hash-chained audit of what happened to them."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.users import User, verify_password
from shared.audit import append_chained, chain_columns
from shared.auth import Role
from shared.db import Database, UTCDateTime
from shared.errors import IllegalTransition, InvalidInput, NotFound, Unauthorized
from shared.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")
metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("unit_id", String(40)),
    Column("industry", String(40)),
    Column("district", String(12)),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(32), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoked_why", String(40)),
)
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", String(32), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(40), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("subject", String(64)),
    Column("client", String(64)),
    Column("detail", String(500)),
    *chain_columns(),
)


class Pbkdf2Legacy:
    """The gateway's first password format (``pbkdf2_sha256$...``): verified, never made;
    a user signing in with one gets an argon2id hash in its place."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        text = hash.decode() if isinstance(hash, bytes) else hash
        return text.startswith("pbkdf2_sha256$")

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        raise NotImplementedError("new hashes are argon2id")

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        text = hash.decode() if isinstance(hash, bytes) else hash
        secret = password.decode() if isinstance(password, bytes) else password
        return verify_password(secret, text)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True


def password_hasher(memory_kib: int = 65536, time_cost: int = 3) -> PasswordHash:
    return PasswordHash(
        (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1), Pbkdf2Legacy())
    )


def check_binding(
    role: Role, unit_id: str | None, industry: str | None, district: str | None = None
) -> None:
    """A unit user belongs to one unit, an authority to one industry (Art 8); a district
    binding (district agencies, Art 3) is optional; nobody else is bound."""
    if role is Role.UNIT and not unit_id:
        raise InvalidInput("unit_id", "a unit user needs its unit")
    if role is not Role.UNIT and unit_id:
        raise InvalidInput("unit_id", f"role {role.value} is not bound to a unit")
    if role is Role.AUTHORITY and not industry:
        raise InvalidInput("industry", "an industry authority needs its industry (Art 8)")
    if role is not Role.AUTHORITY and industry:
        raise InvalidInput("industry", f"role {role.value} is not bound to an industry")


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: Role
    unit_id: str | None
    industry: str | None
    district: str | None
    disabled: bool

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "name": self.name,
            "role": self.role.value,
            "unit_id": self.unit_id,
            "industry": self.industry,
            "district": self.district,
            "disabled": self.disabled,
        }


def _account(row: Any) -> Account:
    return Account(
        row.username,
        row.name,
        Role(row.role),
        row.unit_id,
        row.industry,
        row.district,
        bool(row.disabled),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Issued:
    account: Account
    session_id: str
    refresh_token: str


class IdentityStore:
    def __init__(self, db: Database, hasher: PasswordHash, refresh_ttl: timedelta) -> None:
        self.db = db
        self.hasher = hasher
        self.refresh_ttl = refresh_ttl
        # nothing verifies against it: an unknown user costs the same as a wrong password
        self._decoy = hasher.hash(secrets.token_urlsafe(16))

    async def migrate(self) -> None:
        await self.db.migrate(MIGRATIONS)

    # ---- audit -------------------------------------------------------------------------

    async def audit(
        self,
        conn: AsyncConnection,
        action: str,
        actor: str,
        *,
        subject: str | None = None,
        client: str | None = None,
        detail: str | None = None,
    ) -> None:
        await append_chained(
            conn,
            audit_log,
            [
                {
                    "at": _now(),
                    "action": action,
                    "actor": actor[:64],
                    "subject": subject[:64] if subject else None,
                    "client": client,
                    "detail": detail[:500] if detail else None,
                }
            ],
        )

    async def record(self, action: str, actor: str, **fields: Any) -> None:
        async with self.db.engine.begin() as conn:
            await self.audit(conn, action, actor, **fields)

    # ---- users -------------------------------------------------------------------------

    async def get(self, username: str) -> Account | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _account(row) if row else None

    async def list(self) -> list[Account]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_account(r) for r in rows]

    async def add(
        self,
        *,
        username: str,
        name: str,
        role: Role,
        password: str | None = None,
        password_hash: str | None = None,
        unit_id: str | None = None,
        industry: str | None = None,
        district: str | None = None,
        actor: str = "system",
    ) -> Account:
        check_binding(role, unit_id, industry, district)
        if password_hash is None:
            if not password or len(password) < 10:
                raise InvalidInput("password", "at least 10 characters")
            password_hash = await asyncio.to_thread(self.hasher.hash, password)
        now = _now()
        async with self.db.engine.begin() as conn:
            exists = await conn.scalar(select(users.c.username).where(users.c.username == username))
            if exists:
                raise IllegalTransition(f"user {username} already exists")
            await conn.execute(
                insert(users).values(
                    username=username,
                    name=name,
                    role=role.value,
                    unit_id=unit_id,
                    industry=industry,
                    district=district,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self.audit(conn, "user.added", actor, subject=username, detail=role.value)
        found = await self.get(username)
        assert found is not None
        return found

    async def seed(self, entries: Sequence[User]) -> int:
        """Users from a file (the demo users in development), added if missing."""
        added = 0
        for user in entries:
            if await self.get(user.username) is None:
                await self.add(
                    username=user.username,
                    name=user.name,
                    role=user.role,
                    password_hash=user.password_hash,
                    unit_id=user.unit_id,
                    industry=user.industry,
                    district=getattr(user, "district", None),
                    actor="seed",
                )
                added += 1
        return added

    async def _change(self, username: str, actor: str, action: str, **values: Any) -> Account:
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.username == username)
                .values(updated_at=_now(), **values)
            )
            if result.rowcount == 0:
                raise NotFound(f"no user {username}")
            if "disabled" in values or "password_hash" in values:
                await self._revoke_all(conn, username, action)
            await self.audit(conn, action, actor, subject=username)
        found = await self.get(username)
        assert found is not None
        return found

    async def disable(self, username: str, *, actor: str, disabled: bool = True) -> Account:
        """Signs the user out everywhere; their access tokens stop within the check
        interval (≤ 30 s)."""
        action = "user.disabled" if disabled else "user.enabled"
        return await self._change(username, actor, action, disabled=disabled)

    async def reset_password(self, username: str, password: str, *, actor: str) -> Account:
        if len(password) < 10:
            raise InvalidInput("password", "at least 10 characters")
        hashed = await asyncio.to_thread(self.hasher.hash, password)
        return await self._change(username, actor, "user.password_reset", password_hash=hashed)

    async def bind(
        self,
        username: str,
        *,
        actor: str,
        unit_id: str | None = None,
        industry: str | None = None,
        district: str | None = None,
    ) -> Account:
        account = await self.get(username)
        if account is None:
            raise NotFound(f"no user {username}")
        check_binding(account.role, unit_id, industry, district)
        return await self._change(
            username, actor, "user.bound", unit_id=unit_id, industry=industry, district=district
        )

    # ---- sign-in -------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> Account | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            await asyncio.to_thread(self.hasher.verify, password, self._decoy)
            return None
        valid, upgraded = await asyncio.to_thread(
            self.hasher.verify_and_update, password, row.password_hash
        )
        if not valid or row.disabled:
            return None
        if upgraded is not None:  # an older hash: stored again as argon2id
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    update(users)
                    .where(users.c.username == username)
                    .values(password_hash=upgraded, updated_at=_now())
                )
        return _account(row)

    async def start_session(self, account: Account) -> Issued:
        now = _now()
        session_id = secrets.token_hex(16)
        token = secrets.token_urlsafe(32)
        async with self.db.engine.begin() as conn:
            await conn.execute(
                insert(sessions).values(
                    session_id=session_id,
                    username=account.username,
                    created_at=now,
                    expires_at=now + self.refresh_ttl,
                )
            )
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=_digest(token), session_id=session_id, issued_at=now
                )
            )
        return Issued(account, session_id, token)

    async def refresh(self, token: str) -> Issued:
        """A new refresh token for a valid one, which is used up. A used one presented again
        means it was copied: the whole session is revoked."""
        now = _now()
        async with self.db.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(refresh_tokens, sessions, users.c.disabled)
                    .join(sessions, sessions.c.session_id == refresh_tokens.c.session_id)
                    .join(users, users.c.username == sessions.c.username)
                    .where(refresh_tokens.c.token_hash == _digest(token))
                )
            ).first()
            if row is None:
                raise Unauthorized("unknown refresh token: sign in again")
            reused = row.used_at is not None
            if reused:
                await self._revoke(conn, row.session_id, "refresh token reused")
                await self.audit(
                    conn, "session.reuse_detected", row.username, subject=row.session_id
                )
        if reused:  # committed: the revocation stands although the request is refused
            raise Unauthorized("this refresh token was already used: sign in again")
        async with self.db.engine.begin() as conn:
            if row.revoked_at is not None or row.disabled or row.expires_at <= now:
                raise Unauthorized("the session has ended: sign in again")
            used = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == _digest(token),
                    refresh_tokens.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if used.rowcount != 1:  # a concurrent refresh took it first
                raise Unauthorized("this refresh token was already used: sign in again")
            fresh = secrets.token_urlsafe(32)
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=_digest(fresh), session_id=row.session_id, issued_at=now
                )
            )
            user = (await conn.execute(select(users).where(users.c.username == row.username))).one()
        return Issued(_account(user), row.session_id, fresh)

    async def logout(self, session_id: str, username: str) -> None:
        async with self.db.engine.begin() as conn:
            await self._revoke(conn, session_id, "logout")
            await self.audit(conn, "session.logout", username, subject=session_id)

    async def _revoke(self, conn: AsyncConnection, session_id: str, why: str) -> None:
        await conn.execute(
            update(sessions)
            .where(sessions.c.session_id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=_now(), revoked_why=why)
        )

    async def _revoke_all(self, conn: AsyncConnection, username: str, why: str) -> None:
        await conn.execute(
            update(sessions)
            .where(sessions.c.username == username, sessions.c.revoked_at.is_(None))
            .values(revoked_at=_now(), revoked_why=why[:40])
        )

    async def session_active(self, session_id: str) -> bool:
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.revoked_at, sessions.c.expires_at, users.c.disabled)
                    .join(users, users.c.username == sessions.c.username)
                    .where(sessions.c.session_id == session_id)
                )
            ).first()
        return bool(row and row.revoked_at is None and not row.disabled)


class SessionGuard:
    """Whether a token's session still stands, asked of the database at most every
    ``interval`` seconds per session: revocation, logout and disabling take effect within
    that time on every gateway."""

    def __init__(
        self,
        store: IdentityStore,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_remembered: int = 50_000,
    ):
        self.store = store
        self.interval = interval
        self.clock = clock
        self._max = max_remembered
        self._known: dict[str, tuple[bool, float]] = {}

    def clear(self) -> None:
        """Ask the database again for every session (after a change on this gateway)."""
        self._known.clear()

    def standing(self, session_id: str) -> bool:
        """Known to stand, checked within the interval: ``check`` would pass without a
        look at the store (and without a coroutine)."""
        known = self._known.get(session_id)
        return known is not None and known[0] and self.clock() - known[1] < self.interval

    async def check(self, session_id: str) -> None:
        known = self._known.get(session_id)
        now = self.clock()
        if known is None or now - known[1] >= self.interval:
            active = await self.store.session_active(session_id)
            if len(self._known) >= self._max:
                self._known.clear()
            self._known[session_id] = (active, now)
        elif not known[0]:
            active = False
        else:
            active = True
        if not active:
            raise Unauthorized("the session has ended (signed out, revoked or disabled)")

    def forget(self, session_id: str) -> None:
        self._known[session_id] = (False, self.clock())


async def open_identities(settings: Settings) -> IdentityStore:
    """The gateway's identity store, migrated; users from ``HOTLINE_USERS_FILE`` added if
    missing, and the demo users only outside production."""
    from gateway.users import DEMO_USERS_FILE, read_users

    store = IdentityStore(
        Database(
            "gateway",
            settings.db_url,
            pool_size=settings.db_pool_size,
            random_page_cost=settings.db_random_page_cost,  # as the services' (shared/db.py)
        ),
        password_hasher(settings.password_hash_memory_kib),
        timedelta(minutes=settings.refresh_ttl_minutes),
    )
    await store.migrate()
    if settings.users_file:
        await store.seed(read_users(Path(settings.users_file)))
    elif settings.env != "production":
        await store.seed(read_users(DEMO_USERS_FILE))
    return store
