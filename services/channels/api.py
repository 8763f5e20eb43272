"""The channels service's routes: parse, authorise, call one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import PlainTextResponse, Response

from services.channels import open311
from services.channels.handlers import accounts as account_handlers
from services.channels.handlers import cti, webhooks
from services.channels.handlers import notifications as notification_handlers
from services.channels.handlers import open311 as open311_handlers
from services.channels.handlers import wechat as wechat_handlers
from services.channels.schemas import (
    AccountCreate,
    AccountCreated,
    AccountPublic,
    AccountsPublic,
    ApiKeyCheck,
    ApiKeyIdentity,
    CallAnswered,
    CallEnded,
    CallerHistory,
    CallPublic,
    CallRated,
    CallStarted,
    CallTicketLink,
    DeliveriesPublic,
    DeliveryPublic,
    DeliveryStatus,
    NotificationsPublic,
    NotificationStatus,
    OptOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionsPublic,
    UnitContacts,
)
from shared.access import ADMINS, Objects, access, internal, public
from shared.auth import Role
from shared.params import Offset
from shared.service import CallerDep, CtxDep

accounts_router = APIRouter(prefix="/accounts", tags=["accounts"])
keys_router = APIRouter(prefix="/internal/api-keys", tags=["internal"])
wechat_router = APIRouter(prefix="/wechat", tags=["wechat"])
cti_router = APIRouter(prefix="/cti", tags=["cti"])
webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])
notifications_router = APIRouter(prefix="/notifications", tags=["notifications"])
open311_router = APIRouter(prefix="/open311/v2", tags=["open311"])

SignatureDep = Annotated[
    str | None,
    Header(alias="X-Hotline-Signature", description="t=<unix>,v1=<HMAC-SHA256 hex>"),
]
# ---- who may call what (shared/access.py); the handlers check the object ---------------
# a unit its own webhook subscriptions and deliveries, the administrator every unit's
SUBSCRIBERS = access(Role.UNIT, Role.ADMIN, objects=(Objects.OWN_UNIT, Objects.ADMIN))
# the phone system's channel account (a citizen-role API key); channels checks the account
# and the body's signature
PHONE_SYSTEM = access(Role.CITIZEN)
# the operator on the call
CALL_OPERATOR = access(Role.OPERATOR, objects=(Objects.AGENCY,))


# ---- accounts (admin) -------------------------------------------------------------------


@accounts_router.post("", status_code=status.HTTP_201_CREATED, response_model=AccountCreated)
@ADMINS
async def create_account(data: AccountCreate, ctx: CtxDep, caller: CallerDep) -> AccountCreated:
    """A new channel account; its API key and signing secret are shown only here."""
    return await account_handlers.create_account(ctx, caller, data)


@accounts_router.get("", response_model=AccountsPublic)
@ADMINS
async def list_accounts(
    ctx: CtxDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> AccountsPublic:
    return await account_handlers.list_accounts(ctx, limit, offset)


@accounts_router.post("/{account_id}/revoke", response_model=AccountPublic)
@ADMINS
async def revoke_account(account_id: str, ctx: CtxDep, caller: CallerDep) -> AccountPublic:
    """The key stops working (at the gateway within HOTLINE_API_KEY_CACHE_SECONDS)."""
    return await account_handlers.revoke_account(ctx, caller, account_id)


@keys_router.post("/verify", response_model=ApiKeyIdentity)
@internal()
async def verify_api_key(data: ApiKeyCheck, ctx: CtxDep, caller: CallerDep) -> ApiKeyIdentity:
    """The gateway asks whose key this is."""
    caller.require_internal()
    return await account_handlers.identify(ctx, data.api_key)


# ---- WeChat official account (WeChat's servers call these, signed by WeChat) ---------------


@wechat_router.get("/{account_id}", response_class=PlainTextResponse)
@public()
async def wechat_verify(account_id: str, request: Request, ctx: CtxDep) -> PlainTextResponse:
    """URL verification (服务器配置): echoes ``echostr`` when the signature verifies."""
    echo = await wechat_handlers.verify_url(ctx, account_id, request.query_params)
    return PlainTextResponse(echo)


@wechat_router.post("/{account_id}")
@public()
async def wechat_message(account_id: str, request: Request, ctx: CtxDep) -> Response:
    """A follower's message (plain or safe mode); the answer is WeChat's passive reply."""
    body = await request.body()
    answer = await wechat_handlers.receive(ctx, account_id, request.query_params, body)
    media = "text/plain" if answer == "success" else "application/xml"
    return Response(answer, media_type=media)


# ---- the phone system ------------------------------------------------------------------


@cti_router.post("/calls/started", response_model=CallPublic)
@PHONE_SYSTEM
async def call_started(
    data: CallStarted,
    request: Request,
    ctx: CtxDep,
    caller: CallerDep,
    signature: SignatureDep = None,
) -> CallPublic:
    """A call reached the hotline (the phone system's account; body signed)."""
    return await cti.call_started(ctx, caller, signature, await request.body(), data)


@cti_router.post("/calls/answered", response_model=CallPublic)
@PHONE_SYSTEM
async def call_answered(
    data: CallAnswered,
    request: Request,
    ctx: CtxDep,
    caller: CallerDep,
    signature: SignatureDep = None,
) -> CallPublic:
    """An operator answered the call."""
    return await cti.call_answered(ctx, caller, signature, await request.body(), data)


@cti_router.post("/calls/ended", response_model=CallPublic)
@PHONE_SYSTEM
async def call_ended(
    data: CallEnded,
    request: Request,
    ctx: CtxDep,
    caller: CallerDep,
    signature: SignatureDep = None,
) -> CallPublic:
    """The call ended (with the ticket registered during it, when the CTI knows it)."""
    return await cti.call_ended(ctx, caller, signature, await request.body(), data)


@cti_router.post("/calls/rated", response_model=CallPublic)
@PHONE_SYSTEM
async def call_rated(
    data: CallRated,
    request: Request,
    ctx: CtxDep,
    caller: CallerDep,
    signature: SignatureDep = None,
) -> CallPublic:
    """The IVR's key press after the call: 1 满意, 2 基本满意, 3 不满意 (Art 14 (1))."""
    return await cti.call_rated(ctx, caller, signature, await request.body(), data)


@cti_router.put("/calls/{call_id}/ticket", response_model=CallPublic)
@CALL_OPERATOR
async def link_call_ticket(
    call_id: str, data: CallTicketLink, ctx: CtxDep, caller: CallerDep
) -> CallPublic:
    """The operator ties the ticket registered during the call to the call."""
    return await cti.link_ticket(ctx, caller, call_id, data.ticket_id)


@cti_router.get("/calls/{call_id}/caller-tickets", response_model=CallerHistory)
@CALL_OPERATOR
async def caller_tickets(call_id: str, ctx: CtxDep, caller: CallerDep) -> CallerHistory:
    """The caller's earlier tickets for the operator's console (an audited read)."""
    return await cti.caller_history(ctx, caller, call_id)


# ---- outgoing webhooks ------------------------------------------------------------------


@webhooks_router.post(
    "/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionCreated
)
@SUBSCRIBERS
async def create_subscription(
    data: SubscriptionCreate, ctx: CtxDep, caller: CallerDep
) -> SubscriptionCreated:
    """Deliveries of these event types to this URL; a unit's only of its own tickets."""
    return await webhooks.create_subscription(ctx, caller, data)


@webhooks_router.get("/subscriptions", response_model=SubscriptionsPublic)
@SUBSCRIBERS
async def list_subscriptions(ctx: CtxDep, caller: CallerDep) -> SubscriptionsPublic:
    return await webhooks.list_subscriptions(ctx, caller)


@webhooks_router.post("/subscriptions/{subscription_id}/revoke", response_model=SubscriptionPublic)
@SUBSCRIBERS
async def revoke_subscription(
    subscription_id: str, ctx: CtxDep, caller: CallerDep
) -> SubscriptionPublic:
    return await webhooks.revoke_subscription(ctx, caller, subscription_id)


@webhooks_router.get("/deliveries", response_model=DeliveriesPublic)
@SUBSCRIBERS
async def list_deliveries(
    ctx: CtxDep,
    caller: CallerDep,
    subscription_id: Annotated[str | None, Query(max_length=36)] = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> DeliveriesPublic:
    """The delivery log, newest first."""
    return await webhooks.list_deliveries(
        ctx, caller, subscription_id=subscription_id, status=status, limit=limit, offset=offset
    )


@webhooks_router.get("/deliveries/{delivery_id}", response_model=DeliveryPublic)
@SUBSCRIBERS
async def get_delivery(delivery_id: str, ctx: CtxDep, caller: CallerDep) -> DeliveryPublic:
    """One delivery with every attempt."""
    return await webhooks.get_delivery(ctx, caller, delivery_id)


@webhooks_router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic)
@SUBSCRIBERS
async def redeliver(delivery_id: str, ctx: CtxDep, caller: CallerDep) -> DeliveryPublic:
    """Send it again (after the receiver is fixed), with a fresh retry window."""
    return await webhooks.redeliver(ctx, caller, delivery_id)


# ---- Open311 GeoReport v2 (public; POST authenticates with the spec's api_key) -------------

Fmt = Annotated[str, Path(pattern=r"^[a-z]+$", description="json or xml")]


def _open311(fmt: str, status_code: int, body: str) -> Response:
    return Response(body, status_code=status_code, media_type=open311.FORMATS[fmt])


async def _answer(
    fmt: str,
    jurisdiction_id: str | None,
    ctx: Any,
    make: Callable[[], Awaitable[Any]],
    render: Callable[[str, Any], str],
    status_code: int = 200,
) -> Response:
    """Every Open311 answer: the format checked, errors in the spec's own shape."""
    shown = fmt if fmt in open311.FORMATS else "json"
    try:
        open311.check_format(fmt)
        open311_handlers.check_jurisdiction(ctx, jurisdiction_id)
        result = await make()
    except open311.Open311Error as error:
        return _open311(shown, error.status, open311.render_error(shown, error))
    return _open311(fmt, status_code, render(fmt, result))


@open311_router.get("/services.{fmt}")
@public()
async def open311_services(fmt: Fmt, ctx: CtxDep, jurisdiction_id: str | None = None) -> Response:
    """GET Service List: the matters of the dispatch catalog."""
    return await _answer(
        fmt, jurisdiction_id, ctx, lambda: open311_handlers.services(ctx), open311.render_services
    )


@open311_router.get("/services/{service_code}.{fmt}")
@public()
async def open311_service(
    service_code: str, fmt: Fmt, ctx: CtxDep, jurisdiction_id: str | None = None
) -> Response:
    """GET Service Definition (no extra attributes: ``metadata`` is false)."""

    async def make() -> str:
        await open311_handlers.service_exists(ctx, service_code)
        return service_code

    return await _answer(fmt, jurisdiction_id, ctx, make, open311.render_definition)


@open311_router.post("/requests.{fmt}")
@public()
async def open311_create(fmt: Fmt, request: Request, ctx: CtxDep) -> Response:
    """POST Service Request (form-encoded, with ``api_key``): files a ticket on the
    client account's channel."""
    form = {k: str(v) for k, v in (await request.form()).items()}

    async def make() -> list[dict[str, Any]]:
        return [await open311_handlers.create_request(ctx, form)]

    return await _answer(
        fmt, form.get("jurisdiction_id"), ctx, make, open311.render_created, status_code=201
    )


@open311_router.get("/requests.{fmt}")
@public()
async def open311_requests(fmt: Fmt, request: Request, ctx: CtxDep) -> Response:
    """GET Service Requests: service_request_id, service_code, start_date, end_date,
    status."""
    query = dict(request.query_params)
    return await _answer(
        fmt,
        query.get("jurisdiction_id"),
        ctx,
        lambda: open311_handlers.find_requests(ctx, query),
        open311.render_requests,
    )


@open311_router.get("/requests/{request_id}.{fmt}")
@public()
async def open311_request(
    request_id: str, fmt: Fmt, ctx: CtxDep, jurisdiction_id: str | None = None
) -> Response:
    """GET Service Request: one request's status, notes, agency and expected time."""
    return await _answer(
        fmt,
        jurisdiction_id,
        ctx,
        lambda: open311_handlers.one_request(ctx, request_id),
        open311.render_requests,
    )


@open311_router.get("/tokens/{token}.{fmt}")
@public()
async def open311_token(
    token: str, fmt: Fmt, ctx: CtxDep, jurisdiction_id: str | None = None
) -> Response:
    """GET service_request_id from a token."""
    return await _answer(
        fmt,
        jurisdiction_id,
        ctx,
        lambda: open311_handlers.token(ctx, token),
        open311.render_tokens,
    )


# ---- notifications ---------------------------------------------------------------------


@notifications_router.get("", response_model=NotificationsPublic)
@access(Role.AGENCY, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def list_notifications(
    ctx: CtxDep,
    caller: CallerDep,
    status: NotificationStatus | None = None,
    ticket_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> NotificationsPublic:
    """Every notification and how it went (``status=failed``: the ones that could not be
    sent)."""
    return await notification_handlers.list_notifications(
        ctx, status=status, ticket_id=ticket_id, limit=limit, offset=offset
    )


@notifications_router.put("/units/{unit_id}", response_model=UnitContacts)
@ADMINS
async def set_unit_contacts(
    unit_id: str, data: UnitContacts, ctx: CtxDep, caller: CallerDep
) -> UnitContacts:
    """Where a unit hears of new work orders, warnings and overdue tickets."""
    return await notification_handlers.set_unit_contacts(ctx, caller, unit_id, data)


@notifications_router.post("/opt-outs", status_code=status.HTTP_204_NO_CONTENT)
@access(Role.OPERATOR, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def opt_out(data: OptOut, ctx: CtxDep, caller: CallerDep) -> None:
    """A citizen asked (on the phone, by SMS 退订) to receive no more messages."""
    await notification_handlers.opt_out(ctx, data)


routers = [
    accounts_router,
    keys_router,
    wechat_router,
    cti_router,
    webhooks_router,
    notifications_router,
    open311_router,
]
