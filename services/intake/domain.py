"""Intake's pure rules: who must give a name and phone, what a phone number looks like,
how a ticket number reads. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from shared.calendar import SHANGHAI

# Tianjin's 16 districts by administrative code (市辖区).
DISTRICTS: dict[str, str] = {
    "120101": "和平区",
    "120102": "河东区",
    "120103": "河西区",
    "120104": "南开区",
    "120105": "河北区",
    "120106": "红桥区",
    "120110": "东丽区",
    "120111": "西青区",
    "120112": "津南区",
    "120113": "北辰区",
    "120114": "武清区",
    "120115": "宝坻区",
    "120116": "滨海新区",
    "120117": "宁河区",
    "120118": "静海区",
    "120119": "蓟州区",
}

# Art 5: these types need no contact or verification, so name and phone are optional.
CONTACT_OPTIONAL_TYPES = frozenset({"consultation", "suggestion", "praise"})

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


class RequesterMissing(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def normalise_phone(raw: str) -> str:
    """Strip spaces and a +86 prefix; raise ValueError unless it is a mainland mobile
    number (1[3-9]xxxxxxxxx) or a landline with area code (022-23456789)."""
    phone = re.sub(r"[\s()]", "", raw)
    phone = re.sub(r"^(\+?86)-?", "", phone)
    if MOBILE.match(phone) or LANDLINE.match(phone):
        return phone
    raise ValueError("not a valid mainland China mobile number (11 digits, 1[3-9]…) or landline")


def check_requester(
    ticket_type: str,
    name: str | None,
    phone: str | None,
    *,
    anonymous: bool,
    anonymous_allowed: bool,
) -> None:
    """Art 5: name and phone are required when the matter needs contact or verification —
    every type but consultation, suggestion and praise — unless the requester chose
    anonymity and the catalog allows it for the matter."""
    if ticket_type in CONTACT_OPTIONAL_TYPES:
        return
    if anonymous:
        if anonymous_allowed:
            return
        raise RequesterMissing("anonymous", "this matter does not allow anonymous requests (Art 5)")
    if not name:
        raise RequesterMissing("requester.name", f"required for {ticket_type} tickets (Art 5)")
    if not phone:
        raise RequesterMissing("requester.phone", f"required for {ticket_type} tickets (Art 5)")


def ticket_number(serial: int, registered_at: datetime) -> str:
    """Human-readable number: TJ + registration date (Shanghai) + serial, e.g.
    TJ20260115000123."""
    return f"TJ{registered_at.astimezone(SHANGHAI):%Y%m%d}{serial:06d}"


def mask_phone(phone: str | None) -> str | None:
    """138****1234 (Art 28)."""
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


@dataclass(frozen=True)
class Matter:
    code: str
    name: str
    default_urgency: str
    anonymous_allowed: bool
    active: bool
