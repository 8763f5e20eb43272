"""The notification providers, each an HTTP API: an SMS gateway and WeChat's template
message API. Each sends one notification and says how it went; neither raises."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from shared.settings import Settings

Outcome = tuple[int | None, str | None]  # HTTP status (None: no answer), error (None: sent)


class Provider(Protocol):
    def not_configured(self, settings: Settings) -> str | None: ...

    async def send(self, settings: Settings, http: httpx.AsyncClient, row: Any) -> Outcome: ...


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[Any, Outcome]:
    try:
        answer = await http.post(url, json=body)
    except httpx.HTTPError as exc:
        return None, (None, f"{type(exc).__name__}: {exc}"[:500])
    if not 200 <= answer.status_code < 300:
        return None, (answer.status_code, f"HTTP {answer.status_code}: {answer.text[:200]}")
    try:
        return answer.json(), (answer.status_code, None)
    except ValueError:
        return {}, (answer.status_code, None)


class SmsProvider:
    """POST ``HOTLINE_SMS_URL`` with ``{"sign_name", "phone", "template_code",
    "template_params", "content"}``; any 2xx whose JSON ``code`` is absent or ``OK`` sends."""

    def not_configured(self, settings: Settings) -> str | None:
        return None if settings.sms_url else "no SMS provider configured (HOTLINE_SMS_URL)"

    async def send(self, settings: Settings, http: httpx.AsyncClient, row: Any) -> Outcome:
        body = {
            "sign_name": settings.sms_sign_name,
            "phone": row.recipient,
            "template_code": settings.sms_templates.get(row.purpose, row.purpose),
            "template_params": row.params,
            "content": f"【{settings.sms_sign_name}】{row.text}",
        }
        answer, outcome = await _post(http, settings.sms_url, body)
        if outcome[1] is None and isinstance(answer, dict) and answer.get("code", "OK") != "OK":
            return outcome[0], f"provider refused: {answer.get('code')} {answer.get('message', '')}"
        return outcome


class WeChatTemplateProvider:
    """WeChat's 发送模板消息: POST ``HOTLINE_WECHAT_TEMPLATE_URL`` (the API URL with its
    access_token, or a relay adding it) with ``{"touser", "template_id", "url", "data"}``;
    WeChat answers 200 with ``errcode`` 0 when sent."""

    def not_configured(self, settings: Settings) -> str | None:
        return (
            None
            if settings.wechat_template_url
            else "no WeChat template provider configured (HOTLINE_WECHAT_TEMPLATE_URL)"
        )

    async def send(self, settings: Settings, http: httpx.AsyncClient, row: Any) -> Outcome:
        params: dict[str, str] = row.params
        body = {
            "touser": row.recipient,
            "template_id": settings.wechat_template_ids.get(row.purpose, row.purpose),
            "url": params.get("link", ""),
            "data": {
                "first": {"value": row.text},
                "keyword1": {"value": params.get("ticket_id", "")},
                "remark": {"value": "天津12345政务服务便民热线"},
            },
        }
        answer, outcome = await _post(http, settings.wechat_template_url, body)
        if outcome[1] is None and isinstance(answer, dict) and answer.get("errcode", 0) != 0:
            return outcome[0], f"WeChat refused: {answer.get('errcode')} {answer.get('errmsg')}"
        return outcome


PROVIDERS: dict[str, Provider] = {"sms": SmsProvider(), "wechat": WeChatTemplateProvider()}
