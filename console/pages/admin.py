"""Administration: the dispatch catalog, the working-day calendar as a year grid (official,
overridden and provisional days visibly different), and the versioned policy settings."""

from __future__ import annotations

import calendar as pycalendar
import json
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from console.app import PAGE_SIZE, api, render
from console.client import ApiError
from console.pages.common import CsrfDep, Page, UserDep, offset_of, text
from console.pages.tickets import _local_to_utc

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


MATTER_FIELDS = ("name", "keywords", "default_urgency", "functional_only", "statutory_period")


@router.get("/admin/catalog/{code}")
async def matter(code: str, request: Request, user: UserDep) -> Response:
    found = await api(request).call("GET", f"/api/v1/dispatch/catalog/matters/{code}", user.token)
    return _matter_form(request, found, found, None)


@router.post("/admin/catalog/{code}", dependencies=[CsrfDep])
async def change_matter(code: str, request: Request, user: UserDep) -> Response:
    """Through ``PUT /catalog/matters/{code}``: the matter as it is, with the form's fields
    over it (units responsible and the rest unchanged); a refusal shows at its field."""
    client = api(request)
    current = await client.call("GET", f"/api/v1/dispatch/catalog/matters/{code}", user.token)
    form = await request.form()
    keywords = (text(form, "keywords") or "").replace("，", "、").replace(",", "、")
    edited = {
        "name": text(form, "name") or "",
        "keywords": [k.strip() for k in keywords.split("、") if k.strip()],
        "default_urgency": text(form, "default_urgency"),
        "functional_only": form.get("functional_only") == "yes",
        "anonymous_allowed": form.get("anonymous_allowed") == "yes",
        "statutory_period": text(form, "statutory_period"),
    }
    body = {
        **{k: current.get(k) for k in ("active", "responsible")},
        **edited,
        "effective_from": _local_to_utc(text(form, "effective_from")),
    }
    body["responsible"] = body["responsible"] or {}
    try:
        await client.call("PUT", f"/api/v1/dispatch/catalog/matters/{code}", user.token, json=body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return _matter_form(request, current, {**current, **edited}, exc)
    return RedirectResponse(f"/admin/catalog?q={code}", status_code=303)


def _matter_form(
    request: Request, matter: dict[str, Any], form: dict[str, Any], exc: ApiError | None
) -> Response:
    return render(
        request,
        "matter.html",
        422 if exc else 200,
        matter=matter,
        form=form,
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
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
    return _policy_page(request, service, found, {}, None)


@router.post("/admin/policy", dependencies=[CsrfDep])
async def add_policy_version(request: Request, user: UserDep) -> Response:
    """A new version of one service's settings from its effective date, through the
    service's ``POST /policy/versions``; a refusal shows at its field."""
    service = request.query_params.get("service", "sla")
    service = service if service in POLICY_SERVICES else "sla"
    path, _ = POLICY_SERVICES[service]
    client = api(request)
    form = await request.form()
    entered = {"settings": form.get("settings"), "effective_from": form.get("effective_from")}
    exc: ApiError | None = None
    try:
        settings = json.loads(str(form.get("settings") or ""))
    except ValueError:
        exc = ApiError(422, "", [{"field": "settings", "reason": "设置须为 JSON 对象"}])
    else:
        body = {"effective_from": _local_to_utc(text(form, "effective_from")), "settings": settings}
        try:
            await client.call("POST", f"{path}/versions", user.token, json=body)
        except ApiError as refused:
            if refused.status != 422:
                raise
            exc = refused
    if exc is None:
        return RedirectResponse(f"/admin/policy?service={service}", status_code=303)
    found = await client.call("GET", path, user.token)
    return _policy_page(request, service, found, entered, exc)


def _policy_page(
    request: Request,
    service: str,
    found: dict[str, Any],
    entered: dict[str, Any],
    exc: ApiError | None,
) -> Response:
    errors: dict[str, str] = {}
    for name, reason in (exc.field_errors if exc else {}).items():  # settings_x → settings
        errors.setdefault(name.split("_")[0] if name.startswith("settings") else name, reason)
    offset = offset_of(request)
    return render(
        request,
        "policy.html",
        422 if exc else 200,
        service=service,
        services=POLICY_SERVICES,
        policy=found,
        versions=found["versions"][offset : offset + PAGE_SIZE],
        page=Page(offset, len(found["versions"])),
        form={
            "settings": entered.get("settings")
            or json.dumps(found["in_force"]["settings"], ensure_ascii=False, indent=2),
            "effective_from": entered.get("effective_from") or "",
        },
        errors=errors,
        problem=exc.message if exc else None,
    )
