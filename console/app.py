"""The console app the gateway mounts at ``/``: Jinja2 pages, htmx, vendored assets."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from console import i18n
from console.client import Api, ApiError
from console.live import LiveFeed
from console.refresh import SessionRefresh
from console.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    CsrfFailed,
    NotSignedIn,
    User,
    csrf_for,
    end_session,
    user_from,
)
from shared.bus import Bus
from shared.settings import Settings

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
env = templates.env
env.filters["sh"] = i18n.shanghai
env.filters["parse_time"] = i18n.parse_time
env.globals.update(
    ROLES=i18n.ROLES,
    CHANNELS=i18n.CHANNELS,
    TYPES=i18n.TYPES,
    URGENCY=i18n.URGENCY,
    STATES=i18n.STATES,
    CLOCK_KINDS=i18n.CLOCK_KINDS,
    RATINGS=i18n.RATINGS,
    KNOWLEDGE_KINDS=i18n.KNOWLEDGE_KINDS,
    SUPERVISION_KINDS=i18n.SUPERVISION_KINDS,
    REQUEST_ACTIONS=i18n.REQUEST_ACTIONS,
    DISTRICTS=i18n.DISTRICTS,
    EVENTS=i18n.EVENTS,
    label=i18n.label,
    time_left=i18n.time_left,
    CSRF_FIELD=CSRF_FIELD,
)

PAGE_SIZE = 20


@dataclass
class ConsoleState:
    api: Api
    secret: str
    secure_cookies: bool
    live: LiveFeed
    web_channel_user: str
    web_channel_password: str
    session_seconds: int  # how long a sign-in lasts through refresh tokens


def menu_for(role: str) -> list[tuple[str, str]]:
    """The navigation a role sees; the API still decides what each page may show."""
    menus = {
        "operator": [
            ("/operator", "登记工单"),
            ("/tickets", "工单查询"),
            ("/evaluation/revisits", "回访"),
            ("/knowledge", "知识库"),
        ],
        "agency": [
            ("/agency/dispatch", "人工派单"),
            ("/agency/returns", "退回审核"),
            ("/agency/extensions", "延期审核"),
            ("/agency/determinations", "职责界定"),
            ("/agency/board", "超时预警"),
            ("/agency/flagged", "敏感工单"),
            ("/agency/hotspots", "热点"),
            ("/agency/supervisions", "督办"),
            ("/tickets", "工单查询"),
            ("/evaluation/revisits", "回访"),
            ("/evaluation/exemptions", "免责"),
            ("/evaluation/scores", "考核"),
            ("/knowledge", "知识库"),
        ],
        "unit": [
            ("/unit/inbox", "待办工单"),
            ("/agency/supervisions", "督办"),
            ("/evaluation/exemptions", "免责"),
            ("/knowledge", "知识库"),
        ],
        "authority": [("/agency/determinations", "职责界定")],
        "admin": [
            ("/admin/catalog", "派单目录"),
            ("/admin/calendar", "工作日历"),
            ("/admin/policy", "政策设置"),
            ("/admin/users", "用户"),
            ("/tickets", "工单查询"),
            ("/evaluation/scores", "考核"),
            ("/knowledge", "知识库"),
        ],
        "supervisor": [("/supervisor", "社会监督")],
        "govservice": [
            ("/govservice/supervisors", "社会监督员"),
            ("/evaluation/scores", "考核"),
            ("/agency/determinations", "职责界定"),
        ],
    }
    return menus.get(role, []) + [("/docs", "API 文档")]


def home_for(role: str) -> str:
    return menu_for(role)[0][0] if menu_for(role)[:-1] else "/docs"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = user_from(request)
    session = request.cookies.get(SESSION_COOKIE, "")
    now = context.pop("now", None) or datetime.now(UTC)
    context.update(
        user=user,
        menu=menu_for(user.role) if user else [],
        csrf=csrf_for(request, session) if session else "",
        now=now,
        path=request.url.path,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def api(request: Request) -> Api:
    state: ConsoleState = request.app.state.console
    return state.api


async def server_now(request: Request, user: User | None) -> datetime:
    """The platform's clock (controllable in drills and tests), as the SLA service has it;
    countdowns are computed from it, not from the browser's clock."""
    # embedded mode: the one shared clock at /api/v1/clock; distributed: the SLA process's
    for path in ("/api/v1/clock", "/api/v1/sla/internal/clock"):
        try:
            state = await api(request).call("GET", path, user.token if user else None)
        except ApiError:
            continue
        parsed = i18n.parse_time(state["now"])
        if parsed is not None:
            return parsed
    return datetime.now(UTC)


def create_console(gateway_app: Any, settings: Settings, *, bus: Bus | None = None) -> FastAPI:
    live = LiveFeed(settings, bus)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with live.running():
            yield
        await state.api.aclose()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    production = settings.env == "production"
    state = ConsoleState(
        api=Api(gateway_app),
        secret=settings.jwt_secret,
        secure_cookies=production,
        live=live,
        web_channel_user=os.environ.get("HOTLINE_CONSOLE_WEB_USER", "citizen_web"),
        web_channel_password=os.environ.get(
            "HOTLINE_CONSOLE_WEB_PASSWORD", "" if production else "demo12345"
        ),
        session_seconds=settings.refresh_ttl_minutes * 60,
    )
    app.state.console = state
    app.add_middleware(
        SessionRefresh,
        api=lambda: state.api,
        session_seconds=lambda: state.session_seconds,
        secure=lambda: state.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        return render(
            request, "error.html", 403, status=403, message="表单已失效，请刷新页面后重试"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = "页面不存在" if exc.status_code == 404 else str(exc.detail)
        return render(
            request, "error.html", exc.status_code, status=exc.status_code, message=message
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            if request.headers.get("hx-request"):
                response: Response = Response(
                    status_code=401, headers={"HX-Redirect": "/login?expired=1"}
                )
            else:
                response = RedirectResponse("/login?expired=1", status_code=303)
            end_session(response)
            return response
        status = exc.status if exc.status in (403, 404, 409, 422) else 502
        return render(request, "error.html", status, status=exc.status, message=exc.message)

    from console.pages import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
    return app
