"""One ticket's page for everyone allowed to see it: facts, the timeline across services,
every clock with its deadline (Shanghai time) and what is left; and the actions the
signed-in role may take on it. What the API refuses, the page refuses (403)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from console.app import api, render, server_now
from console.client import ApiError
from console.i18n import SHANGHAI
from console.pages.common import CsrfDep, UserDep, text
from console.session import User

router = APIRouter()


async def _optional(call: Any) -> Any:
    """An answer the page can do without: ``None`` when refused or missing (403 of the
    ticket itself is decided by the dispatch and timeline answers)."""
    try:
        return await call
    except ApiError as exc:
        if exc.status in (403, 404, 409, 422):
            return None
        raise


async def load_ticket(request: Request, user: User, ticket_id: str) -> dict[str, Any]:
    """Everything the page shows, asked of the API at once. The timeline decides whether
    the user may see the ticket at all (its 403 or 404 is the page's); the other parts are
    shown where the API gives them."""
    client = api(request)
    token = user.token
    privileged = user.role in ("operator", "agency", "admin")
    timeline, assignment, facts, clocks, revisit, now = await asyncio.gather(
        client.call("GET", f"/api/v1/tickets/{ticket_id}/timeline", token),
        _optional(client.call("GET", f"/api/v1/dispatch/tickets/{ticket_id}", token)),
        _optional(client.call("GET", f"/api/v1/intake/tickets/{ticket_id}", token))
        if privileged
        else asyncio.sleep(0, None),
        _optional(client.call("GET", f"/api/v1/sla/tickets/{ticket_id}/clocks", token)),
        _optional(client.call("GET", f"/api/v1/evaluation/revisits/{ticket_id}", token)),
        server_now(request, user),
    )
    return {
        "ticket_id": ticket_id,
        "timeline": timeline["events"],
        "assignment": assignment,
        "facts": facts,
        "clocks": (clocks or {}).get("clocks", []),
        "extensions": (clocks or {}).get("extensions", []),
        "revisit": revisit,
        "now": now,
    }


async def _units(request: Request, user: User, district: str | None) -> list[dict[str, Any]]:
    try:
        units: list[dict[str, Any]] = await api(request).call(
            "GET", "/api/v1/dispatch/units", user.token, params={"district": district}
        )
    except ApiError:
        return []
    return units


@router.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: str, request: Request, user: UserDep) -> Response:
    data = await load_ticket(request, user, ticket_id)
    assignment = data["assignment"]
    units: list[dict[str, Any]] = []
    if user.role in ("agency", "authority", "admin") and assignment is not None:
        if assignment["state"] in ("pending_dispatch", "pending_determination"):
            units = await _units(request, user, assignment["district"])
            units += [u for u in await _units(request, user, None) if u["level"] == "city"]
    return render(
        request,
        "ticket.html",
        units=units,
        problem=request.query_params.get("problem"),
        done=request.query_params.get("done"),
        **data,
    )


def _local_to_utc(value: str | None) -> str | None:
    """A ``datetime-local`` value entered in Shanghai time as a UTC ISO instant."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API names the field and the reason
    if local.tzinfo is None:
        local = local.replace(tzinfo=SHANGHAI)
    return local.isoformat()


def _action(ticket_id: str, form: Any) -> tuple[str, str, Any, str]:
    """The API call for one action button: method, path, JSON body, what it did."""
    action = text(form, "action") or ""
    t = f"/api/v1/dispatch/tickets/{ticket_id}"
    body: dict[str, Any]
    if action == "accept":
        return "POST", f"{t}/accept", None, "已接单"
    if action == "return":
        body = {"reason": text(form, "reason") or "", "basis": text(form, "basis") or ""}
        return "POST", f"{t}/return", body, "已申请退回，等待工作机构审核"
    if action == "return_approve":
        return "POST", f"{t}/return/approve", {"note": text(form, "note")}, "已同意退回"
    if action == "return_reject":
        return "POST", f"{t}/return/reject", {"reason": text(form, "reason") or ""}, "已驳回退回"
    if action == "input":
        return "POST", f"{t}/inputs", {"text": text(form, "text") or ""}, "已提交协办意见"
    if action == "dispatch":
        body = {"unit_id": text(form, "unit_id") or "", "note": text(form, "note")}
        return "POST", f"{t}/dispatch", body, "已派单"
    if action == "determination":
        co = [v for v in form.getlist("co_unit_ids") if isinstance(v, str) and v]
        body = {
            "lead_unit_id": text(form, "lead_unit_id") or "",
            "co_unit_ids": co,
            "reason": text(form, "reason") or "",
        }
        return "POST", f"{t}/determination", body, "已确定承办单位"
    if action == "complete":
        body = {
            "policy_basis": text(form, "policy_basis") or "",
            "progress": text(form, "progress") or "",
            "result": text(form, "result") or "",
            "contacted_at": _local_to_utc(text(form, "contacted_at")) or "",
            "process": text(form, "process") or "",
            "feedback": text(form, "feedback") or "",
        }
        return "POST", f"{t}/complete", body, "已办结答复"
    if action == "extension":
        body = {
            "reason": text(form, "reason") or "",
            "progress": text(form, "progress") or "",
            "measures": text(form, "measures") or "",
        }
        return "POST", f"/api/v1/sla/tickets/{ticket_id}/extensions", body, "已申请延期"
    ext = text(form, "extension_id") or ""
    if action == "extension_approve":
        body = {"explanation_to_requester": text(form, "explanation") or ""}
        return "POST", f"/api/v1/sla/extensions/{ext}/approve", body, "已同意延期"
    if action == "extension_explanation":
        body = {
            "channel": text(form, "channel") or "phone",
            "explained_at": _local_to_utc(text(form, "explained_at")) or "",
            "progress": text(form, "progress") or "",
            "measures": text(form, "measures") or "",
            "content": text(form, "content") or "",
        }
        return "POST", f"/api/v1/sla/extensions/{ext}/explanation", body, "已记录向诉求人的解释"
    if action == "extension_reject":
        body = {"reason": text(form, "reason") or ""}
        return "POST", f"/api/v1/sla/extensions/{ext}/reject", body, "已驳回延期"
    e = f"/api/v1/evaluation/revisits/{ticket_id}"
    if action == "revisit":
        body = {
            "rating": text(form, "rating") or "",
            "resolved": form.get("resolved") == "yes",
            "note": text(form, "note"),
        }
        return "POST", e, body, "已记录回访评价"
    if action == "revisit_decision":
        body = {"decision": text(form, "decision") or "", "reason": text(form, "reason") or ""}
        return "POST", f"{e}/decision", body, "已作出回访处理决定"
    if action == "supervise":
        body = {
            "kind": text(form, "kind") or "ticket",
            "ticket_id": ticket_id,
            "reason": text(form, "reason") or "",
        }
        return "POST", "/api/v1/evaluation/supervisions", body, "已发起督办"
    raise ApiError(422, f"unknown action {action!r}")


@router.post("/tickets/{ticket_id}/act", dependencies=[CsrfDep])
async def act(ticket_id: str, request: Request, user: UserDep) -> Response:
    """Every action button posts here; the API decides whether it is allowed. A refusal
    shows the page again with the reason beside the form that caused it."""
    form = await request.form()
    method, path, body, done = _action(ticket_id, form)
    action = text(form, "action")
    if action == "complete" and not body["contacted_at"]:
        body["contacted_at"] = (await server_now(request, user)).isoformat()
    if action == "extension_explanation" and not body["explained_at"]:
        body["explained_at"] = (await server_now(request, user)).isoformat()
    try:
        await api(request).call(method, path, user.token, json=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        data = await load_ticket(request, user, ticket_id)
        units: list[dict[str, Any]] = []
        if text(form, "action") in ("dispatch", "determination") and data["assignment"]:
            units = await _units(request, user, data["assignment"]["district"])
        return render(
            request,
            "ticket.html",
            422,
            units=units,
            problem=exc.message,
            failed_action=text(form, "action"),
            errors=exc.field_errors,
            form={k: v for k, v in form.items() if isinstance(v, str)},
            **data,
        )
    return RedirectResponse(f"/tickets/{ticket_id}?done={quote(done)}", status_code=303)
