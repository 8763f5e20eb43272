"""Intake's routes: parse, authorise, call one handler."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from services.intake import handlers
from services.intake.schemas import (
    CallRatingCreate,
    CallRatingPublic,
    MatterPublic,
    PolicyPublic,
    PolicyVersionCreate,
    RequesterContact,
    RequesterReadsPublic,
    TicketCreate,
    TicketFilter,
    TicketLookup,
    TicketPublic,
    TicketRegistration,
    TicketsPublic,
    TicketStatusPublic,
)
from shared.access import ADMINS, EVERY_ROLE, Objects, access
from shared.asgi import header
from shared.auth import Caller, Role
from shared.direct import direct
from shared.params import Offset
from shared.replays import records_nonce_in_its_write
from shared.service import CallerDep, CtxDep, ServiceContext, get_caller, get_ctx, nonce_to_write

router = APIRouter(prefix="/tickets", tags=["tickets"])
matters_router = APIRouter(prefix="/matters", tags=["matters"])
policy_router = APIRouter(prefix="/policy", tags=["policy"])
audit_router = APIRouter(prefix="/audit", tags=["audit"])

# who may call what (shared/access.py); the handlers check the object (the requester's
# phone, the lead unit)
REGISTERING_ROLES = (Role.CITIZEN, Role.OPERATOR, Role.ADMIN)
READING_ROLES = (Role.OPERATOR, Role.AGENCY, Role.ADMIN)
LOOKUP_ROLES = (Role.CITIZEN, Role.OPERATOR)
CALL_RATING_ROLES = (Role.CITIZEN, Role.OPERATOR)
POLICY_READERS = (Role.OPERATOR, Role.AGENCY, Role.ADMIN)
AUDIT_READERS = (Role.AGENCY, Role.ADMIN)


# Idempotency-Key (issue 12): read by ``_register_call`` rather than declared as a header
# parameter, which FastAPI would solve at ~14 us a request even when it is absent; the
# operation documents it as FastAPI documents ``Header(alias=..., **KEY_RULES)`` (a test
# holds the two equal) and a bad key is refused with the same 422.
IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_RULES: dict[str, Any] = {"min_length": 1, "max_length": 255, "pattern": r"^[\x21-\x7e]+$"}
KEY_DESCRIPTION = (
    "Any unique string per request (e.g. a UUID). A retry with the same key (same caller, "
    "same body) returns the first ticket instead of a second; kept for 24 h "
    "(HOTLINE_IDEMPOTENCY_RETENTION_HOURS)."
)
_KEY = TypeAdapter(Annotated[str, Field(**KEY_RULES)])
_KEY_HEADER = IDEMPOTENCY_KEY.lower().encode()
KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [
            {
                "type": "string",
                "minLength": KEY_RULES["min_length"],
                "maxLength": KEY_RULES["max_length"],
                "pattern": KEY_RULES["pattern"],
            },
            {"type": "null"},
        ],
        "description": KEY_DESCRIPTION,
        "title": IDEMPOTENCY_KEY,
    },
    "description": KEY_DESCRIPTION,
}


class RegisterCall(NamedTuple):
    """What ``register`` needs of its request besides the body (a named tuple: made for
    every ticket, in half a frozen dataclass's time)."""

    ctx: ServiceContext
    caller: Caller
    nonce: str | None  # recorded in the registration's own write (shared/replays.py)
    idempotency_key: str | None


async def _register_call(request: Request) -> RegisterCall:
    """The service, caller, nonce and Idempotency-Key as one dependency: FastAPI spends
    8-15 us on each dependency of a request, however little it does (issue 12)."""
    ctx = get_ctx(request)
    caller, nonce = await get_caller(request), await nonce_to_write(request, ctx)
    key = header(request.scope["headers"], _KEY_HEADER)
    if key is not None:
        try:
            key = _KEY.validate_python(key)
        except ValidationError as invalid:
            raise RequestValidationError(
                [
                    {**error, "loc": ("header", IDEMPOTENCY_KEY, *error["loc"])}
                    for error in invalid.errors(include_url=False)
                ]
            ) from None
    return RegisterCall(ctx, caller, nonce, key)


RegisterCallDep = Annotated[RegisterCall, Depends(_register_call)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketRegistration,
    openapi_extra={"parameters": [KEY_PARAMETER]},
)
@access(*REGISTERING_ROLES, objects=(Objects.AGENCY, Objects.ADMIN))
@records_nonce_in_its_write
@direct  # every ticket comes this way: past FastAPI's router (shared/direct.py)
async def register(data: TicketCreate, call: RegisterCallDep) -> Response:
    """Register a request from any channel; returns its ticket number (e.g. TJ20260115000123)
    and, for operators, earlier tickets with the same phone and matter. With ``answer`` an
    operator closes a consultation on the spot (Art 6). 503 with ``Retry-After`` when the
    database is unavailable: nothing was registered, retry (with the same key)."""
    return Registered(
        await handlers.register_ticket(
            call.ctx, call.caller, data, call.idempotency_key, call.nonce
        )
    )


class Registered(Response):
    """The answer to a registration: the response model's JSON, written by the handler
    (``answer_json``), in a 201 with the headers of FastAPI's JSON answers, made without
    ``Response.__init__``'s rendering and headers' assembly (0.9 -> 0.4 us a ticket)."""

    media_type = "application/json"

    def __init__(self, content: bytes) -> None:
        self.status_code = status.HTTP_201_CREATED
        self.body = content
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(content)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]


@router.get("", response_model=TicketsPublic)
@access(*READING_ROLES, objects=(Objects.AGENCY, Objects.ADMIN))
async def list_tickets(
    f: Annotated[TicketFilter, Query()], ctx: CtxDep, caller: CallerDep
) -> TicketsPublic:
    """Tickets, filtered and paginated; flagged first; requester data masked."""
    return await handlers.list_tickets(ctx, caller, f)


@router.post("/lookup", response_model=TicketStatusPublic)
@access(*LOOKUP_ROLES, objects=(Objects.REQUESTER, Objects.AGENCY))
async def lookup(data: TicketLookup, ctx: CtxDep, caller: CallerDep) -> TicketStatusPublic:
    """A citizen's own ticket by its number and the phone it was filed with."""
    return await handlers.lookup_ticket(ctx, caller, data.ticket_id, data.phone)


@router.get("/{ticket_id}", response_model=TicketPublic)
@access(
    *READING_ROLES,
    objects=(Objects.AGENCY, Objects.ADMIN),
    refused="role {role} does not read intake's registration of a ticket; the ticket as "
    "your role may see it is GET /api/v1/tickets/{ticket_id}",
)
async def get_ticket(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> TicketPublic:
    """The ticket as registered, with the requester (operator, agency, admin). Every role
    reads the ticket as it may see it at GET /api/v1/tickets/{ticket_id}."""
    return await handlers.get_ticket(ctx, caller, ticket_id)


@router.get("/{ticket_id}/requester", response_model=RequesterContact)
@access(
    Role.OPERATOR,
    Role.AGENCY,
    Role.UNIT,
    Role.ADMIN,
    objects=(Objects.LEAD_UNIT, Objects.AGENCY, Objects.ADMIN),
)
async def read_requester(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> RequesterContact:
    """The requester's name and phone for the ticket's lead unit to contact them (Art 13),
    and for operator, agency and admin; every read is written to the audit log. Co-units
    and other units: 403."""
    return await handlers.read_requester(ctx, caller, ticket_id)


@router.post(
    "/{ticket_id}/call-rating",
    status_code=status.HTTP_201_CREATED,
    response_model=CallRatingPublic,
)
@access(*CALL_RATING_ROLES, objects=(Objects.REQUESTER, Objects.AGENCY))
async def rate_call(
    ticket_id: str, data: CallRatingCreate, ctx: CtxDep, caller: CallerDep
) -> CallRatingPublic:
    """话务服务评价 (Art 14 (1)): once, phone tickets only."""
    return await handlers.rate_call(ctx, caller, ticket_id, data)


@matters_router.get("", response_model=list[MatterPublic])
@access(*EVERY_ROLE)
async def list_matters(ctx: CtxDep, caller: CallerDep) -> list[MatterPublic]:
    """The matters a ticket may be registered under (from the dispatch catalog)."""
    return await handlers.list_matters(ctx)


@policy_router.get("", response_model=PolicyPublic)
@access(*POLICY_READERS, objects=(Objects.AGENCY, Objects.ADMIN))
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """Intake's policy settings in force, and every version."""
    return await handlers.read_policy(ctx)


@policy_router.post("/versions", status_code=status.HTTP_201_CREATED, response_model=PolicyPublic)
@policy_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PolicyPublic, include_in_schema=False
)
@ADMINS
async def add_policy_version(
    data: PolicyVersionCreate, ctx: CtxDep, caller: CallerDep
) -> PolicyPublic:
    """A new version of the settings, in force from ``effective_from`` (not in the past)."""
    return await handlers.add_policy_version(ctx, caller, data)


@audit_router.get("/requester-reads", response_model=RequesterReadsPublic)
@access(*AUDIT_READERS, objects=(Objects.AGENCY, Objects.ADMIN))
async def requester_reads(
    ctx: CtxDep,
    caller: CallerDep,
    ticket_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> RequesterReadsPublic:
    """Who read which requester's full name and phone, and when (Art 28, 29)."""
    return await handlers.list_requester_reads(ctx, ticket_id, limit, offset)
