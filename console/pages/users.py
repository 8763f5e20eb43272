"""Users (admin): the gateway's user administration (``/api/v1/admin/users``) as a page:
the list, adding a user, disabling and enabling, a new password, and the binding of a unit
user to its unit, an authority to its industry (Art 8) or a district agency to its district
(Art 3). Each refusal shows at its field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from console.app import PAGE_SIZE, api, render
from console.client import ApiError
from console.pages.common import CsrfDep, Page, UserDep, offset_of, values
from console.session import User

router = APIRouter(prefix="/admin/users")
USERS = "/api/v1/admin/users"


async def _units(request: Request, user: User) -> list[dict[str, Any]]:
    """The catalog's units, to pick a binding from (the page works without them)."""
    try:
        units: list[dict[str, Any]] = await api(request).call(
            "GET", "/api/v1/dispatch/units", user.token
        )
    except ApiError:
        return []
    return units


async def _list_page(
    request: Request,
    user: User,
    form: dict[str, Any] | None = None,
    exc: ApiError | None = None,
    done: str | None = None,
) -> Response:
    accounts: list[dict[str, Any]] = await api(request).call("GET", USERS, user.token)
    q = (request.query_params.get("q") or "").strip()
    role = request.query_params.get("role") or ""
    if q:
        accounts = [a for a in accounts if q in a["username"] or q in a["name"]]
    if role:
        accounts = [a for a in accounts if a["role"] == role]
    offset = offset_of(request)
    units = await _units(request, user)
    return render(
        request,
        "users.html",
        422 if exc else 200,
        rows=accounts[offset : offset + PAGE_SIZE],
        page=Page(offset, len(accounts)),
        query={k: v for k, v in (("q", q), ("role", role)) if v},
        units=units,
        unit_names={u["unit_id"]: u["name"] for u in units},
        industries=sorted({u["industry"] for u in units if u.get("industry")}),
        form=form or {},
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
        done=done,
    )


@router.get("")
async def users(request: Request, user: UserDep) -> Response:
    return await _list_page(request, user, done=request.query_params.get("done"))


def _binding(form: dict[str, Any]) -> dict[str, str | None]:
    return {
        k: (str(form.get(k) or "").strip() or None) for k in ("unit_id", "industry", "district")
    }


@router.post("", dependencies=[CsrfDep])
async def add_user(request: Request, user: UserDep) -> Response:
    form = values(await request.form())
    body = {
        "username": (form.get("username") or "").strip(),
        "name": (form.get("name") or "").strip(),
        "role": form.get("role") or "",
        "password": form.get("password") or "",
        **_binding(form),
    }
    try:
        await api(request).call("POST", USERS, user.token, json=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        if exc.status == 409:
            exc.errors = [{"field": "username", "reason": "用户名已存在"}]
        return await _list_page(request, user, {**form, "password": ""}, exc)
    return RedirectResponse(f"/admin/users/{body['username']}?done=added", status_code=303)


async def _user_page(
    request: Request, user: User, username: str, exc: ApiError | None = None, **context: Any
) -> Response:
    accounts: list[dict[str, Any]] = await api(request).call("GET", USERS, user.token)
    account = next((a for a in accounts if a["username"] == username), None)
    if account is None:
        return render(request, "error.html", 404, status=404, message=f"没有用户 {username}")
    units = await _units(request, user)
    return render(
        request,
        "user.html",
        422 if exc else 200,
        account=account,
        units=units,
        industries=sorted({u["industry"] for u in units if u.get("industry")}),
        errors=exc.field_errors if exc else {},
        problem=exc.message if exc else None,
        done=request.query_params.get("done"),
        **context,
    )


@router.get("/{username}")
async def one_user(username: str, request: Request, user: UserDep) -> Response:
    return await _user_page(request, user, username)


@router.post("/{username}", dependencies=[CsrfDep])
async def change_user(username: str, request: Request, user: UserDep) -> Response:
    """One change per form: ``action`` is ``disable``, ``enable``, ``password`` or ``bind``."""
    form = values(await request.form())
    action = form.get("action")
    client = api(request)
    path = f"{USERS}/{username}"
    try:
        if action in ("disable", "enable"):
            await client.call("POST", f"{path}/{action}", user.token)
        elif action == "password":
            password = form.get("password") or ""
            if password != (form.get("password_again") or ""):
                raise ApiError(
                    422, "", [{"field": "password_again", "reason": "两次输入的密码不一致"}]
                )
            await client.call("POST", f"{path}/password", user.token, json={"password": password})
        elif action == "bind":
            await client.call("PUT", f"{path}/binding", user.token, json=_binding(form))
        else:
            return render(request, "error.html", 422, status=422, message="未知操作")
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _user_page(request, user, username, exc, entered=form)
    return RedirectResponse(f"/admin/users/{username}?done={action}", status_code=303)
