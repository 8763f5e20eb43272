"""Sign-in and bearer tokens: a user logs in once and carries a JWT (HS256) that names
them, their role and their unit; every later request is checked against it."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, ValidationError

from gateway.users import User, UserDirectory
from shared.auth import Caller, Role
from shared.errors import Unauthorized
from shared.settings import Settings

_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["sub", "role", "iat", "exp"]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


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
    expires_in: int = Field(description="seconds until the token expires")
    user: UserPublic


def issue_token(settings: Settings, user: User, *, now: float | None = None) -> TokenPublic:
    issued_at = int(now if now is not None else time.time())
    ttl = settings.jwt_ttl_minutes * 60
    claims = {
        "sub": user.username,
        "role": user.role.value,
        "unit_id": user.unit_id,
        "industry": user.industry,
        "district": user.district,
        "name": user.name,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=_ALGORITHM)
    return TokenPublic(access_token=token, expires_in=ttl, user=UserPublic(**user.public()))


def verify_token(secret: str, token: str) -> tuple[Caller, int]:
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
    return caller, int(claims["exp"])


class TokenVerifier:
    """Checks bearer tokens, remembering the ones already verified: a client sends the
    same token for hours, and the proxy should not pay for its signature every time. Expiry
    is checked on every use."""

    def __init__(self, secret: str, *, max_remembered: int = 10_000) -> None:
        self._secret = secret
        self._max = max_remembered
        self._verified: dict[str, tuple[Caller, int]] = {}

    def caller(self, token: str) -> Caller:
        known = self._verified.get(token)
        if known is not None:
            caller, expires = known
            if time.time() < expires:
                return caller
            del self._verified[token]
            raise Unauthorized("the access token has expired: sign in again")
        caller, expires = verify_token(self._secret, token)
        if len(self._verified) >= self._max:
            self._verified.clear()  # crude but rare: only a flood of fresh logins fills it
        self._verified[token] = (caller, expires)
        return caller

    def caller_from_authorization(self, authorization: str | None) -> Caller:
        """The caller of an ``Authorization: Bearer <jwt>`` header value."""
        if not authorization:
            raise Unauthorized("sign in first: send Authorization: Bearer <access_token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be: Bearer <access_token>")
        return self.caller(token.strip())


def get_caller(request: Request) -> Caller:
    tokens: TokenVerifier = request.app.state.tokens
    return tokens.caller_from_authorization(request.headers.get("authorization"))


CallerDep = Annotated[Caller, Depends(get_caller)]
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=TokenPublic,
    openapi_extra={"security": []},
    responses={401: {"description": "wrong user name or password"}},
)
async def login(body: LoginRequest, request: Request) -> TokenPublic:
    """Sign in with user name and password; returns a bearer token."""
    users: UserDirectory = request.app.state.users
    # PBKDF2 releases the GIL: verify in a thread so proxied traffic keeps flowing.
    user = await asyncio.to_thread(users.authenticate, body.username, body.password)
    if user is None:
        raise Unauthorized("wrong user name or password")
    return issue_token(request.app.state.settings, user)


@router.get("/me", response_model=UserPublic)
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
