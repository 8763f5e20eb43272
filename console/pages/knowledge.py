"""The knowledge base (Art 15–20): search, the entry editor that shows a screening
refusal at the exact place in the text, entries near expiry, update requests, notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from starlette.responses import RedirectResponse, Response

from console.app import api, render
from console.client import ApiError
from console.pages.common import CsrfDep, UserDep, fetch_page, text, values

router = APIRouter()
TEXT_FIELDS = ("title", "body", "legal_basis", "scope", "applicable_subjects", "conditions")


def marked(value: str, findings: list[dict[str, Any]]) -> Markup:
    """``value`` with each screening finding wrapped in ``<mark>`` at its position."""
    out: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: int(f["position"])):
        start, end = int(f["position"]), int(f["position"]) + int(f["length"])
        if start < at or end > len(value):
            continue
        out.append(str(escape(value[at:start])))
        out.append(
            f'<mark class="refused" data-kind="{escape(f["kind"])}" '
            f'title="{escape(f["kind"])}">{escape(value[start:end])}</mark>'
        )
        at = end
    out.append(str(escape(value[at:])))
    return Markup("".join(out))


FINDING_KINDS = {
    "resident_id": "身份证号",
    "mobile": "手机号",
    "bank_card": "银行卡号",
    "email": "电子邮箱",
    "classification_marking": "密级标识",
}


@router.get("/knowledge")
async def search(request: Request, user: UserDep) -> Response:
    q = request.query_params.get("q")
    kind = request.query_params.get("kind")
    if q:
        found, page = await fetch_page(request, user, "/api/v1/knowledge/search", q=q, kind=kind)
    else:
        found, page = await fetch_page(request, user, "/api/v1/knowledge/entries", kind=kind)
    return render(
        request,
        "knowledge.html",
        rows=found["data"],
        page=page,
        query={k: v for k, v in {"q": q, "kind": kind}.items() if v},
    )


@router.get("/knowledge/expiring")
async def expiring(request: Request, user: UserDep) -> Response:
    before = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    found, page = await fetch_page(
        request, user, "/api/v1/knowledge/entries", valid_until_before=before, status="published"
    )
    return render(request, "knowledge.html", rows=found["data"], page=page, query={}, expiring=True)


def _day(value: str | None) -> str | None:
    """A date picked in the form as midnight Shanghai time (the API wants an instant)."""
    if value and len(value) == 10:
        return f"{value}T00:00:00+08:00"
    return value


def _entry_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {name: text(form, name) for name in TEXT_FIELDS}
    body.update(
        kind=text(form, "kind"),
        valid_from=_day(text(form, "valid_from")),
        valid_until=_day(text(form, "valid_until")),
        matter_codes=[c.strip() for c in (text(form, "matter_codes") or "").split(",") if c],
    )
    return body


def _editor(
    request: Request, entry: dict[str, Any] | None, form: dict[str, Any], exc: ApiError | None
) -> Response:
    findings: list[dict[str, Any]] = list((exc.body.get("findings") if exc else None) or [])
    by_field: dict[str, Markup] = {}
    for name in TEXT_FIELDS:
        mine = [f for f in findings if f.get("field") == name]
        if mine:
            by_field[name] = marked(str(form.get(name) or ""), mine)
    return render(
        request,
        "entry.html",
        422 if exc else 200,
        entry=entry,
        form=form,
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
        findings=findings,
        marked=by_field,
        FINDING_KINDS=FINDING_KINDS,
        done=request.query_params.get("done"),
    )


@router.get("/knowledge/entries/new")
async def new_entry(request: Request, user: UserDep) -> Response:
    today = datetime.now(UTC).date()
    form = {
        "kind": "answer_script",
        "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=150)).isoformat(),
    }
    return _editor(request, None, form, None)


@router.post("/knowledge/entries/new", dependencies=[CsrfDep])
async def create_entry(request: Request, user: UserDep) -> Response:
    form = await request.form()
    body = _entry_body(form)
    body["publish"] = form.get("publish") == "on"
    try:
        entry = await api(request).call("POST", "/api/v1/knowledge/entries", user.token, json=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return _editor(request, None, values(form), exc)
    return RedirectResponse(f"/knowledge/entries/{entry['entry_id']}?done=1", status_code=303)


@router.get("/knowledge/entries/{entry_id}")
async def entry_page(entry_id: str, request: Request, user: UserDep) -> Response:
    entry = await api(request).call("GET", f"/api/v1/knowledge/entries/{entry_id}", user.token)
    form = {**entry, "matter_codes": ",".join(entry.get("matter_codes") or [])}
    return _editor(request, entry, form, None)


@router.post("/knowledge/entries/{entry_id}", dependencies=[CsrfDep])
async def update_entry(entry_id: str, request: Request, user: UserDep) -> Response:
    form = await request.form()
    client = api(request)
    try:
        if form.get("step") == "publish":
            await client.call("POST", f"/api/v1/knowledge/entries/{entry_id}/publish", user.token)
        elif form.get("step") == "confirm":
            await client.call(
                "POST", f"/api/v1/knowledge/entries/{entry_id}/confirm", user.token, json=None
            )
        else:
            body = {**_entry_body(form), "note": text(form, "note")}
            await client.call(
                "PATCH", f"/api/v1/knowledge/entries/{entry_id}", user.token, json=body
            )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        entry = await client.call("GET", f"/api/v1/knowledge/entries/{entry_id}", user.token)
        return _editor(request, entry, {**entry, **values(form)}, exc)
    return RedirectResponse(f"/knowledge/entries/{entry_id}?done=1", status_code=303)


@router.get("/knowledge/requests")
async def update_requests(request: Request, user: UserDep) -> Response:
    found, page = await fetch_page(request, user, "/api/v1/knowledge/update-requests")
    return render(request, "requests.html", rows=found["data"], page=page)


@router.post("/knowledge/requests", dependencies=[CsrfDep])
async def create_request(request: Request, user: UserDep) -> Response:
    form = await request.form()
    await api(request).call(
        "POST",
        "/api/v1/knowledge/update-requests",
        user.token,
        json={
            "unit_id": text(form, "unit_id"),
            "entry_id": text(form, "entry_id"),
            "action": text(form, "action"),
            "reason": text(form, "reason") or "",
            "emergency": form.get("emergency") == "on",
        },
    )
    return RedirectResponse("/knowledge/requests", status_code=303)


@router.get("/knowledge/notices")
async def notices(request: Request, user: UserDep) -> Response:
    found, page = await fetch_page(request, user, "/api/v1/knowledge/policy-notices")
    return render(request, "notices.html", rows=found["data"], page=page)
