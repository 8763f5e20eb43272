"""Sign-in and bearer tokens: a user signs in and carries a short-lived JWT (HS256, at most
30 minutes) naming them, their role and binding and their sign-in session; a rotating
refresh token renews it. Every request is checked against the token, and its session against
the database at least every ``HOTLINE_SESSION_CHECK_SECONDS`` (≤ 30 s): logout, revocation
and a disabled user take effect within that time."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, ValidationError

from gateway.identities import Account, IdentityStore, Issued, SessionGuard
from gateway.throttle import Throttle
from shared.access import EVERY_ROLE, access, public
from shared.auth import Caller, Role
from shared.errors import Unauthorized
from shared.settings import Settings

_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "role", "iat", "exp", "sid"]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class UserPublic(BaseModel):
    username: str
    name: str
    role: Role
    unit_id: str | None
    industry: str | None = None
    district: str | None = None


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires (≤ 30 min)")
    refresh_token: str = Field(description="use once at /auth/refresh for the next pair")
    user: UserPublic


def issue_token(settings: Settings, issued: Issued, *, now: float | None = None) -> TokenPublic:
    user = issued.account
    issued_at = int(now if now is not None else time.time())
    ttl = settings.jwt_ttl_minutes * 60
    claims = {
        "sub": user.username,
        "role": user.role.value,
        "unit_id": user.unit_id,
        "industry": user.industry,
        "district": user.district,
        "name": user.name,
        "sid": issued.session_id,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=_ALGORITHM)
    return TokenPublic(
        access_token=token,
        expires_in=ttl,
        refresh_token=issued.refresh_token,
        user=_public(user),
    )


def _public(user: Account) -> UserPublic:
    return UserPublic(
        username=user.username,
        name=user.name,
        role=user.role,
        unit_id=user.unit_id,
        industry=user.industry,
        district=user.district,
    )


def verify_token(secret: str, token: str) -> tuple[Caller, int, str]:
    """The caller a token names and when it expires (epoch seconds); 401 if it is not
    valid now."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": _REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the access token has expired: sign in again") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("the access token is not valid") from exc
    try:
        caller = Caller(
            sub=claims["sub"],
            role=claims["role"],
            unit_id=claims.get("unit_id"),
            industry=claims.get("industry"),
            district=claims.get("district"),
            name=claims.get("name") or "",
        )
    except ValidationError as exc:
        raise Unauthorized("the access token names no valid caller") from exc
    return caller, int(claims["exp"]), str(claims["sid"])


class TokenVerifier:
    """Checks bearer tokens, remembering the ones already verified: a client sends the
    same token for hours, and the proxy should not pay for its signature every time. Expiry
    is checked on every use."""

    def __init__(self, secret: str, *, max_remembered: int = 10_000) -> None:
        self._secret = secret
        self._max = max_remembered
        self._verified: dict[str, tuple[Caller, int, str]] = {}

    def session(self, token: str) -> tuple[Caller, str]:
        """The caller a valid token names, and its sign-in session."""
        known = self._verified.get(token)
        if known is not None:
            caller, expires, session_id = known
            if time.time() < expires:
                return caller, session_id
            del self._verified[token]
            raise Unauthorized("the access token has expired: sign in again")
        caller, expires, session_id = verify_token(self._secret, token)
        if len(self._verified) >= self._max:
            self._verified.clear()  # crude but rare: only a flood of fresh logins fills it
        self._verified[token] = (caller, expires, session_id)
        return caller, session_id

    def session_from_authorization(self, authorization: str | None) -> tuple[Caller, str]:
        """The caller of an ``Authorization: Bearer <jwt>`` header value."""
        if not authorization:
            raise Unauthorized("sign in first: send Authorization: Bearer <access_token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be: Bearer <access_token>")
        return self.session(token.strip())


async def session_caller(
    tokens: TokenVerifier, sessions: SessionGuard, authorization: str | None
) -> tuple[Caller, str]:
    """The caller of an ``Authorization: Bearer <jwt>`` header whose session still stands,
    and the session."""
    caller, session_id = tokens.session_from_authorization(authorization)
    await sessions.check(session_id)
    return caller, session_id


async def caller_from_authorization(request: Request, authorization: str | None) -> Caller:
    """The caller of an ``Authorization: Bearer <jwt>`` header whose session still stands."""
    state = request.app.state
    caller, request.state.session_id = await session_caller(
        state.tokens, state.sessions, authorization
    )
    return caller


async def get_caller(request: Request) -> Caller:
    return await caller_from_authorization(request, request.headers.get("authorization"))


CallerDep = Annotated[Caller, Depends(get_caller)]
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def client_address(request: Request) -> str:
    return scope_client_address(request.scope)


def scope_client_address(scope: Mapping[str, Any]) -> str:
    """The client's address (uvicorn's: the TCP peer, or X-Forwarded-For's from a trusted
    proxy)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "wrong user name or password, or the session ended"}
}
_THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many failed sign-ins (see Retry-After)"}
}


@router.post(
    "/login",
    response_model=TokenPublic,
    openapi_extra={"security": []},
    responses={**_UNAUTHORIZED, **_THROTTLED},
)
@public()
async def login(body: LoginRequest, request: Request) -> TokenPublic:
    """Sign in with user name and password; returns an access token and a refresh token.
    After too many failed attempts for the user, or from the address, → 429."""
    store: IdentityStore = request.app.state.identities
    throttle: Throttle = request.app.state.throttle
    client = client_address(request)
    try:
        await throttle.check(throttle.login_user, body.username)
        await throttle.check(throttle.login_client, client)
    except Exception:
        await store.record("login.throttled", body.username, subject=body.username, client=client)
        raise
    account = await store.authenticate(body.username, body.password)
    if account is None:
        await throttle.count(throttle.login_user, body.username)
        await throttle.count(throttle.login_client, client)
        await store.record("login.failed", body.username, subject=body.username, client=client)
        raise Unauthorized("wrong user name or password")
    await throttle.clear(throttle.login_user, body.username)
    return issue_token(request.app.state.settings, await store.start_session(account))


@router.post(
    "/refresh",
    response_model=TokenPublic,
    openapi_extra={"security": []},
    responses=_UNAUTHORIZED,
)
@public()  # the refresh token is the credential
async def refresh(body: RefreshRequest, request: Request) -> TokenPublic:
    """A new access token and refresh token for a refresh token, which is used up; a
    refresh token used twice ends its session (it was copied)."""
    store: IdentityStore = request.app.state.identities
    return issue_token(request.app.state.settings, await store.refresh(body.refresh_token))


@router.post("/logout", status_code=204, responses=_UNAUTHORIZED)
@access(*EVERY_ROLE)
async def logout(request: Request, caller: CallerDep) -> None:
    """End this sign-in session: its refresh token stops at once, its access tokens on
    every gateway within the session check interval (≤ 30 s; at once on this one)."""
    store: IdentityStore = request.app.state.identities
    session_id: str = request.state.session_id
    await store.logout(session_id, caller.sub)
    guard: SessionGuard = request.app.state.sessions
    guard.forget(session_id)


@router.get("/me", response_model=UserPublic, responses=_UNAUTHORIZED)
@access(*EVERY_ROLE)
async def me(caller: CallerDep) -> UserPublic:
    """Who the bearer token belongs to."""
    return UserPublic(
        username=caller.sub,
        name=caller.name,
        role=caller.role,
        unit_id=caller.unit_id,
        industry=caller.industry,
        district=caller.district,
    )
