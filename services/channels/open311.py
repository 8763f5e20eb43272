"""Open311 GeoReport v2, as the specification gives it: field lists, JSON and XML
representations, errors. Pure: no I/O, no framework."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from shared.calendar import SHANGHAI

SERVICE_FIELDS = (
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
)
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
CREATED_FIELDS = ("service_request_id", "service_notice", "account_id")
TOKEN_FIELDS = ("service_request_id", "token")
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


class Open311Error(Exception):
    """An error as the spec returns it: a list of ``{code, description}``."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}: use json or xml")
    return fmt


def iso(value: datetime | None) -> str | None:
    """W3C date-time with the local offset, e.g. 2026-03-02T09:00:00+08:00."""
    if value is None:
        return None
    return value.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _items(root: str, item: str, rows: Iterable[Mapping[str, Any]], fields: tuple[str, ...]) -> str:
    body = "".join(
        f"<{item}>" + "".join(f"<{f}>{_value(row.get(f))}</{f}>" for f in fields) + f"</{item}>"
        for row in rows
    )
    return f'<?xml version="1.0" encoding="utf-8"?><{root}>{body}</{root}>'


def render_list(
    fmt: str, root: str, item: str, rows: list[dict[str, Any]], fields: tuple[str, ...]
) -> str:
    if fmt == "xml":
        return _items(root, item, rows, fields)
    import json

    return json.dumps([{f: row.get(f) for f in fields} for row in rows], ensure_ascii=False)


def render_services(fmt: str, rows: list[dict[str, Any]]) -> str:
    return render_list(fmt, "services", "service", rows, SERVICE_FIELDS)


def render_requests(fmt: str, rows: list[dict[str, Any]]) -> str:
    return render_list(fmt, "service_requests", "request", rows, REQUEST_FIELDS)


def render_created(fmt: str, rows: list[dict[str, Any]]) -> str:
    return render_list(fmt, "service_requests", "request", rows, CREATED_FIELDS)


def render_tokens(fmt: str, rows: list[dict[str, Any]]) -> str:
    return render_list(fmt, "service_requests", "request", rows, TOKEN_FIELDS)


def render_definition(fmt: str, service_code: str) -> str:
    """No service here has extra attributes (``metadata`` is false)."""
    if fmt == "xml":
        return (
            '<?xml version="1.0" encoding="utf-8"?><service_definition>'
            f"<service_code>{_value(service_code)}</service_code><attributes></attributes>"
            "</service_definition>"
        )
    import json

    return json.dumps({"service_code": service_code, "attributes": []}, ensure_ascii=False)


def render_error(fmt: str, error: Open311Error) -> str:
    rows = [{"code": error.status, "description": error.description}]
    if fmt == "xml":
        return _items("errors", "error", rows, ("code", "description"))
    return render_list("json", "errors", "error", rows, ("code", "description"))


def group_of(service_code: str) -> str:
    return service_code.split("-", 1)[0]
