"""Who may call each route, and which objects they may touch: declared on the route, checked
in one place, deny by default (Art 28, 29; issue 9).

Every route function carries a declaration::

    @router.post("/{ticket_id}/return/approve")
    @access(Role.AGENCY, objects=(Objects.AGENCY,))
    async def approve_return(...): ...

A set that several routes share is named once, beside the service's routes, and the routes
carry the name (``TICKET_READERS = access(...)``; ``@TICKET_READERS``), so that the
declarations read as the service's policy. A declaration names the roles its handler
accepts, no more: a role the handler would refuse anyway is refused here, before the body
is read, and a reader (or the matrix tests) sees who really may call the route.

``guard`` (an app-wide dependency of every service, and of the gateway's own routers) runs
before the route and its body are read: a route without a declaration answers 403 to
everyone, a role not named answers 403, a route reserved for the gateway answers 404 to
everyone else. The declared ``objects`` say which objects a permitted caller may touch;
the service that owns the object checks them (a unit's ticket in dispatch, a requester in
intake), since only it knows the object. tests/unit/security/test_access_declared.py walks
every app's routes so that none goes without a declaration. ``document_access`` writes the
same declarations into the app's OpenAPI document (``x-roles`` and a sentence on each
operation), so the documented roles are the enforced ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from shared.auth import Caller, Role
from shared.errors import Forbidden, NotFound

ACCESS_ATTRIBUTE = "__hotline_access__"
F = TypeVar("F", bound=Callable[..., Any])


class Objects(StrEnum):
    """Which objects a permitted caller may touch."""

    NONE = "none"  # no object of anyone's: a policy, the catalog, the caller's own list
    OWN_UNIT = "own unit"  # a unit: its own tickets, extensions, entries, scores
    CO_UNIT = "co-unit"  # a unit: the tickets it co-handles (masked requester)
    LEAD_UNIT = "lead unit"  # a unit: only as the ticket's lead unit (Art 13)
    REQUESTER = "requester"  # a citizen: the ticket filed with their phone
    INDUSTRY = "industry"  # an authority: its own industry's cases (Art 8)
    DISTRICT = "district"  # a district work agency: its district (Art 3)
    AGENCY = "agency"  # the hotline's staff (operator, agency, govservice): the whole city
    ADMIN = "admin"  # administrators: everything


@dataclass(frozen=True)
class Access:
    roles: frozenset[Role]
    objects: tuple[Objects, ...] = (Objects.NONE,)
    public: bool = False  # no caller at all (health, the public case page, webhooks)
    internal: bool = False  # the gateway's own calls only
    refused: str = ""  # what a refused role is told instead, with the path's {parameters}

    def check(self, caller: Caller, path_params: dict[str, Any] | None = None) -> None:
        if self.internal:
            caller.require_internal()
            return
        if caller.role not in self.roles:
            if self.refused:
                raise Forbidden(self.refused.format(role=caller.role.value, **path_params or {}))
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise Forbidden(f"role {caller.role.value} may not do this (needs one of: {allowed})")

    def documented(self) -> dict[str, Any]:
        """What an operation of the OpenAPI document says of this declaration: ``x-roles``
        (the roles ``check`` lets through, in RULES §1's order), ``x-objects``, and a
        sentence for the description."""
        if self.internal:
            roles: list[str] = []
            sentence = "Internal: only the gateway calls this; to anyone else it does not exist."
        elif self.public:
            roles = [r.value for r in Role]
            sentence = "Public: no sign-in needed."
        else:
            roles = [r.value for r in Role if r in self.roles]
            sentence = "Roles allowed: " + ", ".join(f"`{r}`" for r in roles) + "."
        objects = [o.value for o in self.objects if o is not Objects.NONE]
        if objects and not (self.public or self.internal):
            sentence = f"{sentence[:-1]} (objects: {', '.join(objects)})."
        extensions: dict[str, Any] = {"x-roles": roles, "x-objects": objects}
        if self.public:
            extensions["x-public"] = True
        if self.internal:
            extensions["x-internal"] = True
        return {**extensions, "sentence": sentence}


def _declare(declared: Access) -> Callable[[F], F]:
    def mark(endpoint: F) -> F:
        setattr(endpoint, ACCESS_ATTRIBUTE, declared)
        return endpoint

    return mark


def access(
    *roles: Role, objects: tuple[Objects, ...] = (Objects.NONE,), refused: str = ""
) -> Callable[[F], F]:
    """The roles that may call the route, and the objects they may touch."""
    if not roles:
        raise ValueError("name the roles; a route for any caller is access(*EVERY_ROLE)")
    return _declare(Access(frozenset(roles), objects, refused=refused))


def public() -> Callable[[F], F]:
    """No caller needed (health checks, the public case page, signed webhooks)."""
    return _declare(Access(frozenset(), public=True))


def internal() -> Callable[[F], F]:
    """The gateway's own calls only; anyone else is told the route does not exist."""
    return _declare(Access(frozenset(), internal=True))


EVERY_ROLE = tuple(Role)
# the administrators' routes (users, units, catalog, calendar, policy settings: RULES §1)
ADMINS = access(Role.ADMIN, objects=(Objects.ADMIN,))


def declared(endpoint: Callable[..., Any]) -> Access | None:
    found: Access | None = getattr(endpoint, ACCESS_ATTRIBUTE, None)
    return found


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document_access(doc: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """``doc`` (an app's OpenAPI document, built from ``routes``) with every operation
    saying who may call it, from each route's declaration: ``x-roles``, ``x-objects``
    (``x-public``/``x-internal`` where so) and a closing sentence of its description.
    Changed in place and returned; applying it twice changes nothing more."""
    paths = doc.get("paths") or {}
    for route in iter_route_contexts(list(routes)):  # included routers' routes too
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        declaration = declared(route.endpoint) if route.endpoint is not None else None
        item = paths.get(route.path_format)
        if declaration is None or not isinstance(item, dict):
            continue
        said = declaration.documented()
        sentence = said.pop("sentence")
        for method in route.methods or ():
            operation = item.get(method.lower())
            if method.lower() not in _METHODS or not isinstance(operation, dict):
                continue
            operation.update(said)
            description = operation.get("description") or ""
            if not description.endswith(sentence):
                operation["description"] = f"{description}\n\n{sentence}".strip()
    return doc


def documents_access(app: FastAPI) -> None:
    """``app`` serves its OpenAPI document with ``document_access`` applied."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return document_access(build(), app.routes)

    app.openapi = openapi  # type: ignore[method-assign]


def guard(get_caller: Callable[[Request], Awaitable[Caller]]) -> Callable[..., Awaitable[None]]:
    """An app or router dependency enforcing each route's declaration, deny by default."""

    async def enforce_access(request: Request) -> None:
        route = request.scope.get("route")
        endpoint = getattr(route, "endpoint", None)
        declaration = declared(endpoint) if endpoint is not None else None
        if declaration is None:
            if endpoint is None:
                raise NotFound("no such resource")
            raise Forbidden("this route declares no access, so nobody may call it")
        if declaration.public:
            return
        declaration.check(await get_caller(request), request.path_params)

    return enforce_access
