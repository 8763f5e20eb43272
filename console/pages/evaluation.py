"""Evaluation (Art 14, 23, 24): the revisit queue, exemptions with evidence, unit scores
and the three rates as charts with the tickets behind each figure, CSV export; the social
supervisor's page."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from console.app import PAGE_SIZE, api, render
from console.client import ApiError, to_error
from console.pages.common import CsrfDep, Page, UserDep, fetch_page, offset_of, text
from console.session import User

router = APIRouter()
INLINE_EVIDENCE = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}


@router.get("/evaluation/revisits")
async def revisits(request: Request, user: UserDep) -> Response:
    state = request.query_params.get("state", "open")
    found, page = await fetch_page(request, user, "/api/v1/evaluation/revisits", state=state)
    return render(request, "revisits.html", rows=found["data"], page=page, query={"state": state})


@router.get("/evaluation/exemptions")
async def exemptions(request: Request, user: UserDep) -> Response:
    return await _exemptions_page(request, user)


async def _exemptions_page(
    request: Request, user: User, form: dict[str, str] | None = None, exc: ApiError | None = None
) -> Response:
    ticket_id = request.query_params.get("ticket_id")
    path = "/api/v1/evaluation/exemptions"
    found, page = await fetch_page(request, user, path, ticket_id=ticket_id)
    return render(
        request,
        "exemptions.html",
        422 if exc else 200,
        rows=found["data"],
        page=page,
        ticket_id=ticket_id,
        form=form or {},
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
    )


@router.post("/evaluation/exemptions", dependencies=[CsrfDep])
async def file_exemption(request: Request, user: UserDep) -> Response:
    """Art 24: the unit's explanation with evidence files, passed to the API as they came;
    a refusal shows beside its field, the form kept."""
    form = await request.form()
    files = [
        ("files", (f.filename or "evidence", await f.read(), f.content_type or "application/pdf"))
        for f in form.getlist("files")
        if not isinstance(f, str) and f.filename
    ]
    data = {
        "ticket_id": text(form, "ticket_id") or "",
        "explanation": text(form, "explanation") or "",
    }
    try:
        await api(request).call(
            "POST", "/api/v1/evaluation/exemptions", user.token, data=data, files=files
        )
    except ApiError as exc:
        if exc.status not in (404, 409, 422):
            raise
        if exc.status == 404:
            exc.errors = [{"field": "ticket_id", "reason": "没有此工单的回访评价"}]
        return await _exemptions_page(request, user, data, exc)
    return RedirectResponse("/evaluation/exemptions?done=filed", status_code=303)


@router.get("/evaluation/exemptions/{exemption_id}/files/{file_id}")
async def evidence_file(
    exemption_id: str, file_id: str, request: Request, user: UserDep
) -> Response:
    """One evidence file, read through the API with the user's rights. Uploaded content
    never runs as a page of the console: a sandbox, and a download unless it is a picture
    or a PDF."""
    path = f"/api/v1/evaluation/exemptions/{exemption_id}/files/{file_id}"
    found = await api(request).raw("GET", path, user.token)
    if found.status_code >= 400:
        raise to_error(found)
    kind = found.headers.get("content-type", "").split(";")[0].strip().lower()
    inline = kind in INLINE_EVIDENCE
    disposition = found.headers.get("content-disposition") or "attachment"
    return Response(
        found.content,
        media_type=kind if inline else "application/octet-stream",
        headers={
            "content-disposition": disposition
            if inline
            else disposition.replace("inline", "attachment"),
            "content-security-policy": "sandbox",
            "x-content-type-options": "nosniff",
        },
    )


@router.post("/evaluation/exemptions/{exemption_id}/decision", dependencies=[CsrfDep])
async def decide_exemption(exemption_id: str, request: Request, user: UserDep) -> Response:
    form = await request.form()
    await api(request).call(
        "POST",
        f"/api/v1/evaluation/exemptions/{exemption_id}/decision",
        user.token,
        json={"decision": text(form, "decision"), "reason": text(form, "reason") or ""},
    )
    return RedirectResponse("/evaluation/exemptions", status_code=303)


def _period(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"from": q.get("from"), "to": q.get("to")}


@router.get("/evaluation/scores")
async def scores(request: Request, user: UserDep) -> Response:
    """Unit scores and the three rates (response, resolution, satisfaction) as charts; a
    click on a bar lists the tickets behind that figure. Paged by rank: the table and both
    charts show one page of units (or districts, matters)."""
    period = _period(request)
    by = request.query_params.get("by", "unit")
    client = api(request)
    found = await client.call("GET", "/api/v1/evaluation/scores", user.token, params=period)
    rates = await client.call(
        "GET", "/api/v1/evaluation/rates", user.token, params={**period, "by": by}
    )
    offset = offset_of(request)
    shown = found["data"][offset : offset + PAGE_SIZE]
    shown_rates = rates["data"][offset : offset + PAGE_SIZE]
    chosen = {k: v for k, v in period.items() if v}
    return render(
        request,
        "scores.html",
        scores={**found, "data": shown},
        rates=rates,
        by=by,
        period=chosen,
        page=Page(offset, max(len(found["data"]), len(rates["data"]))),
        query={**chosen, "by": by},
        chart_scores=orjson.dumps(shown).decode(),
        chart_rates=orjson.dumps(shown_rates).decode(),
    )


@router.get("/evaluation/explain")
async def explain(request: Request, user: UserDep) -> Response:
    """The tickets behind one figure (drill-down from a chart bar)."""
    q = request.query_params
    by, key, measure = q.get("by", "unit"), q.get("key", ""), q.get("measure", "")
    rates = await api(request).call(
        "GET",
        "/api/v1/evaluation/rates",
        user.token,
        params={**_period(request), "by": by, "explain": "true"},
    )
    row = next((r for r in rates["data"] if r["key"] == key), None)
    figure = (row or {}).get(measure) or {}
    return render(request, "_explain.html", row=row, measure=measure, figure=figure)


@router.get("/evaluation/scores.csv")
async def scores_csv(request: Request, user: UserDep) -> Response:
    answer = await api(request).raw(
        "GET", "/api/v1/evaluation/scores.csv", user.token, params=_period(request)
    )
    if answer.status_code >= 400:
        from console.client import to_error

        raise to_error(answer)
    return Response(
        answer.content,
        media_type=answer.headers.get("content-type", "text/csv"),
        headers={"content-disposition": 'attachment; filename="unit-scores.csv"'},
    )


@router.get("/supervisor")
async def supervisor(request: Request, user: UserDep) -> Response:
    client = api(request)
    stats = await client.call(
        "GET", "/api/v1/evaluation/public/statistics", user.token, params=_period(request)
    )
    opinions, page = await fetch_page(request, user, "/api/v1/evaluation/opinions")
    return render(request, "supervisor.html", stats=stats, opinions=opinions["data"], page=page)


@router.post("/supervisor/opinions", dependencies=[CsrfDep])
async def submit_opinion(request: Request, user: UserDep) -> Response:
    form = await request.form()
    await api(request).call(
        "POST",
        "/api/v1/evaluation/opinions",
        user.token,
        json={"subject": text(form, "subject") or "", "body": text(form, "body") or ""},
    )
    return RedirectResponse("/supervisor", status_code=303)


@router.get("/govservice/supervisors")
async def supervisor_team(request: Request, user: UserDep) -> Response:
    """Art 22: the government-services department's team of social supervisors."""
    return await _team_page(request, user)


async def _team_page(
    request: Request, user: User, form: dict[str, Any] | None = None, exc: ApiError | None = None
) -> Response:
    team = await api(request).call("GET", "/api/v1/evaluation/social-supervisors", user.token)
    offset = offset_of(request)
    return render(
        request,
        "team.html",
        422 if exc else 200,
        team=team["data"][offset : offset + PAGE_SIZE],
        page=Page(offset, len(team["data"])),
        form=form or {},
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
    )


@router.post("/govservice/supervisors", dependencies=[CsrfDep])
async def appoint(request: Request, user: UserDep) -> Response:
    form = await request.form()
    body = {
        "username": text(form, "username") or "",
        "name": text(form, "name") or "",
        "affiliation": text(form, "affiliation"),
    }
    try:
        await api(request).call(
            "POST", "/api/v1/evaluation/social-supervisors", user.token, json=body
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _team_page(request, user, body, exc)
    return RedirectResponse("/govservice/supervisors", status_code=303)


@router.post("/govservice/supervisors/{username}/dismiss", dependencies=[CsrfDep])
async def dismiss(username: str, request: Request, user: UserDep) -> Response:
    await api(request).call(
        "POST", f"/api/v1/evaluation/social-supervisors/{username}/dismiss", user.token
    )
    return RedirectResponse("/govservice/supervisors", status_code=303)
