"""The agency's queues (热线工作机构) and the unit's inbox: manual dispatch, returns and
determinations to decide, the overdue and at-risk board with live countdowns, flagged
tickets, hotspots, supervision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from console.app import ConsoleState, api, render, server_now
from console.pages.common import CsrfDep, UserDep, fetch_page, text

router = APIRouter()

# page path → (title, API list, fixed filters, query-string filters with their defaults)
QUEUES: dict[str, tuple[str, str, dict[str, str], dict[str, str | None]]] = {
    "dispatch": ("人工派单队列", "/api/v1/dispatch/tickets", {"state": "pending_dispatch"}, {}),
    "returns": ("退回审核", "/api/v1/dispatch/returns", {}, {"status": "pending"}),
    "determinations": ("职责界定", "/api/v1/dispatch/determinations", {}, {"status": "pending"}),
    "extensions": ("延期审核", "/api/v1/sla/extensions", {}, {"state": "requested"}),
    "flagged": ("敏感、极端事项", "/api/v1/evaluation/flagged", {}, {}),
    "hotspots": ("热点", "/api/v1/evaluation/hotspots", {}, {}),
    "supervisions": ("督办", "/api/v1/evaluation/supervisions", {}, {"state": None}),
}


@router.get("/unit/inbox")
async def inbox(request: Request, user: UserDep) -> Response:
    """The unit's work orders in the API's order, each with its countdown."""
    state = request.query_params.get("state")
    found, page = await fetch_page(request, user, "/api/v1/dispatch/inbox", state=state)
    return render(
        request,
        "inbox.html",
        inbox=found,
        page=page,
        query={"state": state} if state else {},
        now=await server_now(request, user),
    )


@router.post("/agency/supervisions/{supervision_id}/{step}", dependencies=[CsrfDep])
async def supervision_step(
    supervision_id: str, step: str, request: Request, user: UserDep
) -> Response:
    form = await request.form()
    if step == "answer":
        body: dict[str, object] = {"answer": text(form, "answer") or ""}
    else:
        step, body = "close", {"note": text(form, "note")}
    await api(request).call(
        "POST", f"/api/v1/evaluation/supervisions/{supervision_id}/{step}", user.token, json=body
    )
    return RedirectResponse("/agency/supervisions", status_code=303)


async def _board(request: Request, user: Any, template: str) -> Response:
    q = request.query_params
    filters = {
        "status": q.get("status") or "all",
        "urgency": q.get("urgency"),
        "kind": q.get("kind"),
        "district": q.get("district"),
        "unit_id": q.get("unit_id"),
    }
    found, page = await fetch_page(request, user, "/api/v1/sla/board", **filters)
    return render(
        request,
        template,
        rows=found["data"],
        page=page,
        query={k: v for k, v in filters.items() if v},
        now=await server_now(request, user),
    )


@router.get("/agency/board")
async def board(request: Request, user: UserDep) -> Response:
    """Overdue and at-risk clocks; the rows refresh when an SLA event arrives (SSE)."""
    return await _board(request, user, "board.html")


@router.get("/agency/board/rows")
async def board_rows(request: Request, user: UserDep) -> Response:
    return await _board(request, user, "_board_rows.html")


@router.get("/live/sla")
async def live_sla(request: Request, user: UserDep) -> Response:
    """Server-sent events: each SLA event as it happens. It only says that something
    changed; the board then fetches its rows through the API with the user's rights."""
    # the same rights as the board itself: whoever the API refuses the board gets no feed
    await api(request).call("GET", "/api/v1/sla/board", user.token, params={"limit": 1})
    state: ConsoleState = request.app.state.console
    return StreamingResponse(
        state.live.stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# last: the fixed /agency/... pages above match first
@router.get("/agency/{queue}")
async def queue_page(queue: str, request: Request, user: UserDep) -> Response:
    if queue not in QUEUES:
        from starlette.exceptions import HTTPException

        raise HTTPException(404)
    title, path, fixed, filters = QUEUES[queue]
    chosen = {k: request.query_params.get(k, default) for k, default in filters.items()}
    found, page = await fetch_page(request, user, path, **fixed, **chosen)
    # a dispatch deadline (Art 6) is past by the platform's clock, as the board's countdowns
    now = await server_now(request, user) if queue == "dispatch" else None
    return render(
        request, "queue.html", title=title, rows=found["data"], page=page, kind=queue, now=now
    )
