"""User administration (admin only): add, list, disable/enable, reset a password, bind a
user to its unit, industry or district. Every change is written to the gateway's
hash-chained audit log, and disabling or resetting ends the user's sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from gateway.auth import CallerDep
from gateway.identities import Account, IdentityStore
from shared.access import Objects, access
from shared.auth import Role

router = APIRouter(prefix="/api/v1/admin/users", tags=["users"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not signed in"},
    403: {"description": "admin only"},
}
_NAME = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")


class UserCreate(BaseModel):
    username: str = _NAME
    name: str = Field(min_length=1, max_length=100)
    role: Role
    password: str = Field(min_length=10, max_length=200)
    unit_id: str | None = Field(default=None, max_length=40)
    industry: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)


class Binding(BaseModel):
    unit_id: str | None = Field(default=None, max_length=40)
    industry: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)


class PasswordReset(BaseModel):
    password: str = Field(min_length=10, max_length=200)


class AccountPublic(BaseModel):
    username: str
    name: str
    role: Role
    unit_id: str | None
    industry: str | None
    district: str | None
    disabled: bool


def _store(request: Request) -> IdentityStore:
    store: IdentityStore = request.app.state.identities
    return store


def _public(account: Account) -> AccountPublic:
    return AccountPublic.model_validate(account.public())


@router.get("", response_model=list[AccountPublic], responses=_ERRORS)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def list_users(request: Request, caller: CallerDep) -> list[AccountPublic]:
    caller.require(Role.ADMIN)
    return [_public(a) for a in await _store(request).list()]


@router.post(
    "",
    response_model=AccountPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 409: {"description": "the user exists"}},
)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def add_user(body: UserCreate, request: Request, caller: CallerDep) -> AccountPublic:
    caller.require(Role.ADMIN)
    account = await _store(request).add(**body.model_dump(), actor=caller.sub)
    return _public(account)


@router.post("/{username}/disable", response_model=AccountPublic, responses=_ERRORS)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def disable_user(username: str, request: Request, caller: CallerDep) -> AccountPublic:
    """Ends every session of the user; their tokens stop within 30 s on every gateway."""
    caller.require(Role.ADMIN)
    account = await _store(request).disable(username, actor=caller.sub)
    request.app.state.sessions.clear()  # at once on this gateway
    return _public(account)


@router.post("/{username}/enable", response_model=AccountPublic, responses=_ERRORS)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def enable_user(username: str, request: Request, caller: CallerDep) -> AccountPublic:
    caller.require(Role.ADMIN)
    return _public(await _store(request).disable(username, actor=caller.sub, disabled=False))


@router.post("/{username}/password", response_model=AccountPublic, responses=_ERRORS)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def reset_password(
    username: str, body: PasswordReset, request: Request, caller: CallerDep
) -> AccountPublic:
    caller.require(Role.ADMIN)
    account = await _store(request).reset_password(username, body.password, actor=caller.sub)
    request.app.state.sessions.clear()
    return _public(account)


@router.put("/{username}/binding", response_model=AccountPublic, responses=_ERRORS)
@access(Role.ADMIN, objects=(Objects.ADMIN,))
async def bind_user(
    username: str, body: Binding, request: Request, caller: CallerDep
) -> AccountPublic:
    """A unit user's unit, an authority's industry (Art 8), a district agency's district."""
    caller.require(Role.ADMIN)
    return _public(await _store(request).bind(username, actor=caller.sub, **body.model_dump()))
