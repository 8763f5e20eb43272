"""Administration: the dispatch catalog, the working-day calendar as a year grid (official,
overridden and provisional days visibly different), and the versioned policy settings."""

from __future__ import annotations

import calendar as pycalendar
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from console.app import PAGE_SIZE, api, render
from console.pages.common import CsrfDep, Page, UserDep, offset_of, text

router = APIRouter()
POLICY_SERVICES = {
    "sla": ("/api/v1/sla/policy", "时限"),
    "dispatch": ("/api/v1/dispatch/policy", "派单"),
    "intake": ("/api/v1/intake/policy", "受理"),
    "knowledge": ("/api/v1/knowledge/policy", "知识库"),
    "evaluation": ("/api/v1/evaluation/policy", "考核评价"),
}


@router.get("/admin/catalog")
async def catalog(request: Request, user: UserDep) -> Response:
    matters: list[dict[str, Any]] = await api(request).call(
        "GET", "/api/v1/dispatch/catalog/matters", user.token
    )
    q = (request.query_params.get("q") or "").strip()
    if q:
        matters = [m for m in matters if q in m["name"] or q in m["code"] or q in m["keywords"]]
    offset = offset_of(request)
    return render(
        request,
        "catalog.html",
        rows=matters[offset : offset + PAGE_SIZE],
        page=Page(offset, len(matters)),
        query={"q": q} if q else {},
    )


def month_grid(year: int, days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Twelve months of weeks (Monday first), each day with its calendar answer."""
    by_date = {d["date"]: d for d in days}
    months = []
    for month in range(1, 13):
        weeks = []
        for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            weeks.append(
                [
                    {**by_date.get(d.isoformat(), {}), "date": d} if d.month == month else None
                    for d in week
                ]
            )
        months.append({"month": month, "weeks": weeks})
    return months


def day_class(day: dict[str, Any]) -> str:
    weekend = day["date"].weekday() >= 5
    classes = []
    if not day.get("working", True):
        classes.append("day-official-off")
    elif weekend:
        classes.append("day-adjusted")  # 调休: a weekend day that is worked
    else:
        classes.append("day-official-work")
    if day.get("source") == "override":
        classes.append("day-override")
    if day.get("source") == "provisional":
        classes.append("day-provisional")
    return " ".join(classes)


@router.get("/admin/calendar")
async def calendar_now(request: Request, user: UserDep) -> Response:
    return RedirectResponse(f"/admin/calendar/{datetime.now(UTC).year}", status_code=303)


@router.get("/admin/calendar/{year}")
async def calendar_year(year: int, request: Request, user: UserDep) -> Response:
    client = api(request)
    found = await client.call("GET", f"/api/v1/sla/calendar/{year}", user.token)
    status = await client.call("GET", "/api/v1/sla/calendar", user.token)
    return render(
        request,
        "calendar.html",
        year=year,
        cal=found,
        status=status,
        months=month_grid(year, found["days"]),
        day_class=day_class,
        today=date.today(),
    )


@router.post("/admin/calendar/{year}", dependencies=[CsrfDep])
async def change_day(year: int, request: Request, user: UserDep) -> Response:
    form = await request.form()
    day = {
        "date": text(form, "date"),
        "working": form.get("working") == "yes",
        "note": text(form, "note"),
    }
    await api(request).call("PUT", f"/api/v1/sla/calendar/{year}", user.token, json={"days": [day]})
    return RedirectResponse(f"/admin/calendar/{year}", status_code=303)


@router.get("/admin/policy")
async def policy(request: Request, user: UserDep) -> Response:
    service = request.query_params.get("service", "sla")
    path, _ = POLICY_SERVICES.get(service, POLICY_SERVICES["sla"])
    found = await api(request).call("GET", path, user.token)
    return render(request, "policy.html", service=service, services=POLICY_SERVICES, policy=found)
