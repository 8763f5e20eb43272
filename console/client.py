"""The console's only way to the platform: the gateway's own routing, in-process, with the
signed-in user's bearer token. Whatever the API refuses, the console cannot show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from console.i18n import reason_zh

TIMEOUT = httpx.Timeout(30.0)


@dataclass
class ApiError(Exception):
    """A refusal from the API (problem+json), kept whole so a page can show each field's
    reason beside the field."""

    status: int
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    rule: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    @property
    def field_errors(self) -> dict[str, str]:
        """Field name (``requester.phone`` → ``requester_phone``) → reason in Chinese."""
        out: dict[str, str] = {}
        for e in self.errors:
            name = str(e.get("field", "")).replace(".", "_")
            out.setdefault(name, reason_zh(str(e.get("reason", ""))))
        return out

    @property
    def message(self) -> str:
        head = {
            400: "请求有误",
            401: "登录已失效，请重新登录",
            403: "无权执行此操作",
            404: "未找到",
            409: "当前状态不允许此操作",
            422: "填写有误",
            429: "操作过于频繁，请稍后再试",
        }.get(self.status, "系统暂时无法处理")
        detail = reason_zh(self.detail) if self.detail else ""
        if self.rule:
            detail += f"（依据 {self.rule}）"
        return f"{head}：{detail}" if detail else head


class Api:
    """Calls ``/api/v1/...`` on the gateway app through an in-process ASGI transport, so
    every check the gateway makes (token, role, limits) applies to the console too."""

    def __init__(self, gateway_app: Any) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway_app),
            base_url="http://gateway",
            timeout=TIMEOUT,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def raw(self, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", None) or {})
        params = kw.get("params")
        if params:  # an empty filter is no filter
            kw["params"] = {k: v for k, v in params.items() if v not in (None, "")}
        if token:
            headers["authorization"] = f"Bearer {token}"
        return await self._client.request(method, path, headers=headers, **kw)

    async def call(self, method: str, path: str, token: str | None, **kw: Any) -> Any:
        """The JSON answer, or ``ApiError`` for any status from 400 up."""
        response = await self.raw(method, path, token, **kw)
        if response.status_code >= 400:
            raise to_error(response)
        if not response.content:
            return None
        return orjson.loads(response.content)


def to_error(response: httpx.Response) -> ApiError:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors: list[Any] = body["errors"] if isinstance(body.get("errors"), list) else []
    return ApiError(
        status=response.status_code,
        detail=str(body.get("detail") or ""),
        errors=[e for e in errors if isinstance(e, dict)],
        rule=body.get("rule"),
        body=body,
    )
