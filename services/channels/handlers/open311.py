"""Open311 GeoReport v2 at ``/open311/v2/``: the dispatch catalog as services; requests
filed through intake as the client's channel account (``api_key``), and followed from the
ticket events (status, status notes, agency responsible, the SLA clock's expected time)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, insert, select, update

from services.channels.domain import Scope, hash_api_key
from services.channels.handlers.accounts import account_caller
from services.channels.handlers.intake_client import intake
from services.channels.handlers.notifications import ticket_filed
from services.channels.models import accounts, matters, open311_requests, units
from services.channels.open311 import Open311Error, group_of, iso
from shared.db import UnitOfWork, rows_in, update_many
from shared.events import Envelope
from shared.service import ServiceContext

DEFAULT_WINDOW = timedelta(days=90)  # the spec's default for GET requests
MAX_REQUESTS = 1000
NOTICE = "请保存工单号，可凭工单号查询办理进度"


def check_jurisdiction(ctx: ServiceContext, jurisdiction_id: str | None) -> None:
    if jurisdiction_id not in (None, "", ctx.settings.open311_jurisdiction):
        raise Open311Error(404, f"jurisdiction_id {jurisdiction_id!r} is not served here")


async def services(ctx: ServiceContext) -> list[dict[str, Any]]:
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(select(matters).where(matters.c.active).order_by(matters.c.code))
        ).all()
    return [
        {
            "service_code": r.code,
            "service_name": r.name,
            "description": r.name,
            "metadata": False,
            "type": "realtime",
            "keywords": "",
            "group": group_of(r.code),
        }
        for r in rows
    ]


async def service_exists(ctx: ServiceContext, code: str) -> None:
    async with ctx.db.engine.connect() as conn:
        found = await conn.scalar(
            select(matters.c.code).where(matters.c.code == code, matters.c.active)
        )
    if found is None:
        raise Open311Error(404, f"no service {code!r}")


async def _client_account(ctx: ServiceContext, api_key: str | None) -> Any:
    if not api_key:
        raise Open311Error(403, "api_key is required to submit a request")
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(accounts).where(
                    accounts.c.key_hash == hash_api_key(api_key), accounts.c.revoked_at.is_(None)
                )
            )
        ).first()
    if row is None or row.scope != Scope.TICKETS:
        raise Open311Error(403, "api_key is not valid for submitting requests")
    return row


async def create_request(ctx: ServiceContext, form: Mapping[str, str]) -> dict[str, Any]:
    """POST requests: files the ticket at once (no token needed, but one is kept)."""
    account = await _client_account(ctx, form.get("api_key"))
    code = form.get("service_code") or ""
    if not code:
        raise Open311Error(400, "service_code is required")
    await service_exists(ctx, code)
    address = (form.get("address_string") or "").strip() or None
    lat, long = form.get("lat"), form.get("long")
    if address is None and not (lat and long):
        raise Open311Error(400, "a location is required: address_string or lat and long")
    description = (form.get("description") or "").strip()
    name = "".join(p for p in (form.get("last_name"), form.get("first_name")) if p) or None
    phone = (form.get("phone") or "").strip() or None
    media = (form.get("media_url") or "").strip() or None
    body: dict[str, Any] = {
        "type": account.default_type or "consultation",
        "matter_code": code,
        "district": account.default_district or "120101",
        "address": address or f"{lat},{long}",
        "content": description or code,
        "requester": {k: v for k, v in (("name", name), ("phone", phone)) if v},
        "attachments": [{"url": media}] if media else [],
    }
    try:
        answer = await intake(ctx).call(account_caller(account), "POST", "/tickets", json=body)
    except httpx.HTTPError as exc:
        raise Open311Error(503, "the hotline cannot take requests right now") from exc
    if answer.status_code != 201:
        problem = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        raise Open311Error(400, str(problem.get("detail") or f"refused ({answer.status_code})"))
    ticket_id: str = answer.json()["ticket_id"]
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        await uow.conn.execute(
            insert(open311_requests).values(
                ticket_id=ticket_id,
                token=str(uuid.uuid4()),
                account_id=account.account_id,
                service_code=code,
                description=description,
                address=address,
                lat=lat,
                long=long,
                media_url=media,
                status="open",
                requested_at=now,
                updated_at=now,
            )
        )
        await ticket_filed(
            ctx,
            uow,
            ticket_id=ticket_id,
            account_id=account.account_id,
            channel=account.channel,
            phone=phone,
        )
    return {"service_request_id": ticket_id, "service_notice": NOTICE, "account_id": None}


def _request(row: Any) -> dict[str, Any]:
    return {
        "service_request_id": row.ticket_id,
        "status": row.status,
        "status_notes": row.status_notes,
        "service_name": row.name,
        "service_code": row.service_code,
        "description": row.description,
        "agency_responsible": row.agency_responsible,
        "service_notice": NOTICE,
        "requested_datetime": iso(row.requested_at),
        "updated_datetime": iso(row.updated_at),
        "expected_datetime": iso(row.expected_at),
        "address": row.address,
        "address_id": None,
        "zipcode": None,
        "lat": float(row.lat) if row.lat else None,
        "long": float(row.long) if row.long else None,
        "media_url": row.media_url,
    }


def _parse_date(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C date-time") from None
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{name} needs a UTC offset")
    return parsed


async def find_requests(ctx: ServiceContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET requests with the spec's filters; without ids, the last 90 days, at most 1000."""
    joined = open311_requests.join(matters, matters.c.code == open311_requests.c.service_code)
    stmt = select(open311_requests, matters.c.name).select_from(joined)
    ids = [i for i in (query.get("service_request_id") or "").split(",") if i]
    if ids:
        stmt = stmt.where(open311_requests.c.ticket_id.in_(ids))
    else:
        end = _parse_date("end_date", query.get("end_date")) or ctx.clock.now()
        start = _parse_date("start_date", query.get("start_date")) or end - DEFAULT_WINDOW
        stmt = stmt.where(
            open311_requests.c.requested_at >= start, open311_requests.c.requested_at <= end
        )
        codes = [c for c in (query.get("service_code") or "").split(",") if c]
        if codes:
            stmt = stmt.where(open311_requests.c.service_code.in_(codes))
        status = [s for s in (query.get("status") or "").split(",") if s]
        if any(s not in ("open", "closed") for s in status):
            raise Open311Error(400, "status must be open or closed")
        if status:
            stmt = stmt.where(open311_requests.c.status.in_(status))
    stmt = stmt.order_by(open311_requests.c.requested_at.desc()).limit(MAX_REQUESTS)
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_request(r) for r in rows]


async def one_request(ctx: ServiceContext, request_id: str) -> list[dict[str, Any]]:
    found = await find_requests(ctx, {"service_request_id": request_id})
    if not found:
        raise Open311Error(404, f"no service request {request_id!r}")
    return found


async def token(ctx: ServiceContext, token_id: str) -> list[dict[str, Any]]:
    async with ctx.db.engine.connect() as conn:
        ticket_id = await conn.scalar(
            select(open311_requests.c.ticket_id).where(open311_requests.c.token == token_id)
        )
    if ticket_id is None:
        raise Open311Error(404, f"no token {token_id!r}")
    return [{"service_request_id": ticket_id, "token": token_id}]


# ---- the read models, from events --------------------------------------------------------


_UNIT_NAMES = (units.c.unit_id, units.c.name)


async def unit_names(uow: UnitOfWork, dispatches: Sequence[Envelope]) -> dict[str, str]:
    """The names of the units ``dispatches`` went to, in one read."""
    wanted = {e.payload["unit_id"] for e in dispatches}
    rows = await rows_in(uow.conn, _UNIT_NAMES, units.c.unit_id, wanted)
    return {r.unit_id: r.name for r in rows}


def dispatched_values(envelope: Envelope, names: dict[str, str]) -> dict[str, Any]:
    unit_id = envelope.payload["unit_id"]
    return {"agency_responsible": names.get(unit_id) or unit_id, "status_notes": "已派单"}


async def on_dispatched(uow: UnitOfWork, batch: Sequence[Envelope]) -> None:
    """``on_event`` for many ``ticket.dispatched`` at once."""
    names = await unit_names(uow, batch)
    await update_many(
        uow.conn,
        open311_requests,
        ["ticket_id"],
        [
            {"ticket_id": e.ticket_id, **dispatched_values(e, names), "updated_at": e.occurred_at}
            for e in batch
        ],
    )


# the events ``on_event`` reads: the catalog, and a ticket's progress for its request
CATALOG_EVENTS = frozenset({"catalog.matter_published", "catalog.unit_published"})
PROGRESS_EVENTS = frozenset(
    {"ticket.dispatched", "ticket.accepted", "ticket.completed", "ticket.rehandling_started"}
)
# every type ``on_event`` may change something for (``takes_from`` tells for each event)
TAKEN = CATALOG_EVENTS | PROGRESS_EVENTS | {"sla.deadline_set"}


def takes_from(envelope: Envelope) -> bool:
    """Whether ``on_event`` changes anything for ``envelope``."""
    if envelope.type in CATALOG_EVENTS:
        return True
    if envelope.ticket_id is None:
        return False
    return envelope.type in PROGRESS_EVENTS or _expected(envelope)


# a clock's deadline other than the completion clock's, in the bytes of an envelope as
# ``Envelope.to_json`` writes it (the payload's first fields: ticket_id, clock): what
# ``_expected`` refuses, told without parsing it (an envelope written otherwise is parsed)
OTHER_CLOCKS = re.compile(rb'"payload":\{"ticket_id":"[^"\\]*","clock":"(?:dispatch|acceptance)"')


def _expected(envelope: Envelope) -> bool:
    """The deadline the requester is told to expect: the completion clock's."""
    return envelope.type == "sla.deadline_set" and envelope.payload.get("clock") == "completion"


async def on_event(ctx: ServiceContext, uow: UnitOfWork, envelope: Envelope) -> None:
    payload = envelope.payload
    if envelope.type == "catalog.matter_published":
        await uow.conn.execute(delete(matters).where(matters.c.code == payload["code"]))
        await uow.conn.execute(
            insert(matters).values(
                code=payload["code"], name=payload["name"], active=payload.get("active", True)
            )
        )
        return
    if envelope.type == "catalog.unit_published":
        await uow.conn.execute(delete(units).where(units.c.unit_id == payload["unit_id"]))
        await uow.conn.execute(
            insert(units).values(unit_id=payload["unit_id"], name=payload["name"])
        )
        return
    if envelope.ticket_id is None:
        return
    values: dict[str, Any] = {}
    if envelope.type == "ticket.dispatched":
        names = await unit_names(uow, [envelope])
        values = dispatched_values(envelope, names)
    elif envelope.type == "ticket.accepted":
        values = {"status_notes": "承办单位已签收，正在办理"}
    elif envelope.type == "ticket.completed":
        values = {"status": "closed", "status_notes": payload["reply"]["result"]}
    elif envelope.type == "ticket.rehandling_started":
        values = {"status": "open", "status_notes": "再次办理中"}
    elif _expected(envelope):
        values = {"expected_at": datetime.fromisoformat(payload["deadline"])}
    if values:
        values["updated_at"] = envelope.occurred_at
        await uow.conn.execute(
            update(open311_requests)
            .where(open311_requests.c.ticket_id == envelope.ticket_id)
            .values(values)
        )
