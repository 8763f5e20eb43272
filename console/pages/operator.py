"""The operator's workbench (话务员): register a call while it lasts, with matter, unit and
knowledge suggestions beside the form as the content is typed; answer on the spot citing
knowledge entries; the call rating; the ticket list with Chinese search."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from console.app import api, render
from console.client import ApiError
from console.pages.common import CsrfDep, UserDep, fetch_page, text, values

router = APIRouter()


async def _matters(request: Request, token: str) -> list[dict[str, Any]]:
    matters: list[dict[str, Any]] = await api(request).call("GET", "/api/v1/intake/matters", token)
    return matters


@router.get("/operator")
async def workbench(request: Request, user: UserDep) -> Response:
    return render(
        request,
        "operator.html",
        matters=await _matters(request, user.token),
        form={"channel": "phone", "type": "consultation", "district": "120101"},
        errors={},
    )


@router.post("/operator/assist", dependencies=[CsrfDep])
async def assist(request: Request, user: UserDep) -> Response:
    """The side panel: suggested matter and unit, knowledge answers."""
    form = await request.form()
    content = text(form, "content")
    district = text(form, "district") or "120101"
    if not content or len(content) < 4:
        return render(request, "_assist.html", suggestion=None, answers=[], content=None)
    client = api(request)
    suggestion_call = client.call(
        "POST",
        "/api/v1/dispatch/suggestions",
        user.token,
        json={"content": content, "district": district},
    )
    answers_call = client.call(
        "POST",
        "/api/v1/knowledge/suggest",
        user.token,
        json={"text": content, "matter_code": text(form, "matter_code"), "limit": 5},
    )
    suggestion: Any
    answers: Any
    suggestion, answers = await asyncio.gather(
        suggestion_call, answers_call, return_exceptions=True
    )
    return render(
        request,
        "_assist.html",
        content=content,
        suggestion=None if isinstance(suggestion, BaseException) else suggestion,
        answers=[] if isinstance(answers, BaseException) else answers["data"],
        matter_names={m["code"]: m["name"] for m in await _matters(request, user.token)},
    )


@router.post("/operator/history", dependencies=[CsrfDep])
async def caller_history(request: Request, user: UserDep) -> Response:
    """Earlier tickets from the phone being typed (intake audits this search, Art 28)."""
    phone = text(await request.form(), "requester_phone")
    if not phone or len(phone) < 7:
        return render(request, "_history.html", phone=None, rows=[], count=0)
    try:
        found = await api(request).call(
            "GET",
            "/api/v1/intake/tickets",
            user.token,
            params={"requester_phone": phone, "limit": 5, "sort": "-registered_at"},
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        return render(request, "_history.html", phone=phone, rows=[], count=0, invalid=True)
    return render(request, "_history.html", phone=phone, rows=found["data"], count=found["count"])


def ticket_body(form: Any) -> dict[str, Any]:
    """The registration request from the form's fields (Art 5: the requester block)."""
    street = text(form, "street")
    address = text(form, "address")
    body: dict[str, Any] = {
        "channel": text(form, "channel"),
        "type": text(form, "type"),
        "matter_code": text(form, "matter_code"),
        "district": text(form, "district"),
        "address": " ".join(p for p in (street, address) if p) or None,
        "content": text(form, "content"),
        "anonymous": form.get("anonymous") == "on",
        "requester": {"name": text(form, "requester_name"), "phone": text(form, "requester_phone")},
    }
    if text(form, "urgency"):
        body["urgency"] = text(form, "urgency")
    urls = (text(form, "attachments") or "").splitlines()
    body["attachments"] = [
        {"url": u.strip(), "name": u.strip().rsplit("/", 1)[-1]} for u in urls if u.strip()
    ]
    answer = text(form, "answer_text")
    if answer:
        cited = [v for v in form.getlist("knowledge_entry_ids") if isinstance(v, str) and v]
        body["answer"] = {"text": answer, "knowledge_entry_ids": cited}
    return body


@router.post("/operator/register", dependencies=[CsrfDep])
async def register(request: Request, user: UserDep) -> Response:
    form = await request.form()
    try:
        ticket = await api(request).call(
            "POST", "/api/v1/intake/tickets", user.token, json=ticket_body(form)
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return render(
            request,
            "operator.html",
            422,
            matters=await _matters(request, user.token),
            form=values(form),
            errors=exc.field_errors,
            problem=exc.message,
        )
    return render(request, "registered.html", ticket=ticket, rated=None)


@router.post("/operator/tickets/{ticket_id}/call-rating", dependencies=[CsrfDep])
async def call_rating(ticket_id: str, request: Request, user: UserDep) -> Response:
    form = await request.form()
    rated = await api(request).call(
        "POST",
        f"/api/v1/intake/tickets/{ticket_id}/call-rating",
        user.token,
        json={"rating": text(form, "rating")},
    )
    return render(request, "_rated.html", rated=rated)


@router.get("/tickets")
async def ticket_list(request: Request, user: UserDep) -> Response:
    """Registered tickets with Chinese search and filters; requester data masked."""
    q = request.query_params
    filters = {name: q.get(name) for name in ("q", "status", "type", "district", "urgency")}
    found, page = await fetch_page(request, user, "/api/v1/intake/tickets", **filters)
    return render(
        request,
        "tickets.html",
        tickets=found["data"],
        page=page,
        query={k: v for k, v in filters.items() if v},
    )
