"""The channels service's pure rules: API keys and what an account may do, secrets derived
for signing, outgoing signatures and back-off, which subscription gets which event, the
IVR's key-press rating, and what a WeChat follower is told. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from shared.errors import Forbidden, InvalidInput

KEY_PREFIX = "hk_"


class Scope(StrEnum):
    """What an account is for; each is bound to one channel (a unit's system to a unit)."""

    TICKETS = "tickets"  # a web portal, a mini program, an Open311 client
    WECHAT = "wechat"  # a WeChat official account (公众号): WeChat's servers call us
    CTI = "cti"  # the phone system (CTI/IVR)
    UNIT = "unit"  # a handling unit's own system


# The channel an account of each scope files tickets on (None: any of the listed ones).
SCOPE_CHANNELS: dict[Scope, frozenset[str] | None] = {
    Scope.TICKETS: frozenset({"web", "wechat_mini"}),
    Scope.WECHAT: frozenset({"wechat_official"}),
    Scope.CTI: frozenset({"phone"}),
    Scope.UNIT: None,
}


def check_account(scope: Scope, channel: str | None, unit_id: str | None) -> str | None:
    """The channel the account is bound to; refuses a combination that makes no sense."""
    allowed = SCOPE_CHANNELS[scope]
    if allowed is None:
        if channel is not None:
            raise InvalidInput("channel", "a unit's system files no tickets: leave it empty")
        if not unit_id:
            raise InvalidInput("unit_id", "required for a unit's system")
        return None
    if unit_id is not None:
        raise InvalidInput("unit_id", f"only a unit's system names a unit, not {scope.value}")
    if channel is None:
        if len(allowed) == 1:
            return next(iter(allowed))
        raise InvalidInput("channel", f"required: one of {', '.join(sorted(allowed))}")
    if channel not in allowed:
        raise InvalidInput(
            "channel", f"a {scope.value} account files on {', '.join(sorted(allowed))} only"
        )
    return channel


def new_api_key() -> str:
    """256 random bits; shown once, stored only as its hash."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # A random 256-bit key needs no slow hash: nothing short of the key itself matches.
    return hashlib.sha256(key.encode()).hexdigest()


def derived_secret(master: str, purpose: str, ident: str) -> str:
    """A per-account or per-subscription signing secret, computed from the service's key
    rather than stored: shown once at creation, recomputed to sign or verify."""
    return hmac.new(master.encode(), f"{purpose}:{ident}".encode(), hashlib.sha256).hexdigest()


# ---- signatures on requests in and out -------------------------------------------------

SIGNATURE_TOLERANCE = timedelta(minutes=5)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``, hex: the value of ``v1=`` in the header."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def check_signature(secret: str, header: str | None, body: bytes, now: datetime) -> None:
    """A request signed with ``signature_header``, made within the tolerance."""
    if not header:
        raise Forbidden("missing X-Hotline-Signature: sign the body (docs/integrations.md)")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        raise Forbidden("X-Hotline-Signature: t= must be Unix seconds") from None
    if abs(now.timestamp() - timestamp) > SIGNATURE_TOLERANCE.total_seconds():
        raise Forbidden("X-Hotline-Signature: the timestamp is too far from now")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise Forbidden("X-Hotline-Signature does not verify")


# ---- outgoing deliveries -----------------------------------------------------------------


def next_attempt(
    attempts: int, failed_at: datetime, *, base: float, ceiling: float, give_up_at: datetime
) -> datetime | None:
    """When to try again after ``attempts`` failures (30 s, 60 s, 2 min … up to the
    ceiling); None once that would pass ``give_up_at``: the delivery is dead-lettered."""
    delay = min(base * (2 ** max(attempts - 1, 0)), ceiling)
    when = failed_at + timedelta(seconds=delay)
    return None if when > give_up_at else when


EVENT_TYPE_PATTERN = re.compile(r"^(\*|(ticket|sla|evaluation|supervision|monitor)\.(\*|[a-z_]+))$")


def check_event_types(patterns: Iterable[str]) -> list[str]:
    chosen = sorted(set(patterns))
    if not chosen:
        raise InvalidInput("event_types", "name at least one event type, e.g. ticket.dispatched")
    for pattern in chosen:
        if not EVENT_TYPE_PATTERN.match(pattern):
            raise InvalidInput(
                "event_types",
                f"{pattern!r}: use a type (ticket.dispatched), a stream (ticket.*) or *",
            )
    return chosen


def matches(patterns: Iterable[str], event_type: str) -> bool:
    stream = event_type.split(".", 1)[0]
    return any(p in ("*", event_type, f"{stream}.*") for p in patterns)


def receives(unit_id: str | None, event_units: set[str], ticket_units: set[str]) -> bool:
    """A unit's subscription gets only its own tickets' events: those that name the unit
    (lead or co-handling), or, naming none, are about a ticket that is with the unit."""
    if unit_id is None:
        return True
    if event_units:
        return unit_id in event_units
    return unit_id in ticket_units


# ---- the phone system ------------------------------------------------------------------

# Art 14 (1): after the call the IVR asks "满意请按1，基本满意请按2，不满意请按3".
IVR_RATINGS = {"1": "satisfied", "2": "basically_satisfied", "3": "dissatisfied"}


def ivr_rating(key: str) -> str:
    rating = IVR_RATINGS.get(key.strip())
    if rating is None:
        raise InvalidInput("key", "the IVR key must be 1 (满意), 2 (基本满意) or 3 (不满意)")
    return rating


# ---- WeChat followers --------------------------------------------------------------------

NEW_REQUEST_PREFIXES = ("新诉求", "新问题")
QUERY_WORDS = frozenset({"查询", "进度", "查询进度"})
WELCOME = (
    "欢迎关注天津12345政务服务便民热线。直接发送文字即可反映诉求，我们会登记并告知工单号；"
    "发送“查询”可查看办理进度。"
)
REGISTERING = "您的诉求已收到，正在登记，请稍后发送“查询”获取工单号。"
FAILED = "抱歉，诉求暂未能登记，我们会稍后重试；紧急情况请拨打12345。"
MOBILE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")


class MessageKind(StrEnum):
    NEW_TICKET = "new_ticket"
    FOLLOW_UP = "follow_up"
    QUERY = "query"
    EVENT = "event"


def classify_text(text: str, has_open_ticket: bool) -> tuple[MessageKind, str]:
    """What a follower's text is: a query, a new request, or more about their open one."""
    stripped = text.strip()
    if stripped in QUERY_WORDS:
        return MessageKind.QUERY, stripped
    for prefix in NEW_REQUEST_PREFIXES:
        if stripped.startswith(prefix):
            rest = stripped[len(prefix) :].lstrip("：: ")
            return MessageKind.NEW_TICKET, rest or stripped
    if has_open_ticket:
        return MessageKind.FOLLOW_UP, stripped
    return MessageKind.NEW_TICKET, stripped


def mobile_in(text: str) -> str | None:
    found = MOBILE.search(text)
    return found.group(1) if found else None


def registered_reply(ticket_id: str, link: str) -> str:
    return f"您的诉求已登记，工单号：{ticket_id}。办理进度可在此查询：{link}"


def follow_up_reply(ticket_id: str, link: str) -> str:
    return f"已补充到您的工单 {ticket_id}。如需反映新的问题，请以“新诉求”开头发送。办理进度：{link}"


def query_reply(tickets: list[tuple[str, str]], link_of: dict[str, str]) -> str:
    if not tickets:
        return "您还没有通过本公众号登记的诉求。直接发送文字即可反映诉求。"
    lines = [
        f"{tid}（{STATUS_WORDS.get(status, status)}）：{link_of[tid]}" for tid, status in tickets
    ]
    return "您的工单：\n" + "\n".join(lines)


STATUS_WORDS = {"open": "办理中", "completed": "已办结"}


def citizen_link(template: str, ticket_id: str) -> str:
    return template.format(ticket_id=ticket_id)


def role_for(scope: Scope) -> str:
    """The role an account acts in behind the gateway."""
    return "unit" if scope is Scope.UNIT else "citizen"


def check_unit_scope(role: str, caller_unit: str | None, wanted_unit: str | None) -> str | None:
    """A unit manages only its own subscriptions; the admin anyone's."""
    if role == "unit":
        if wanted_unit not in (None, caller_unit):
            raise Forbidden("a unit subscribes to its own tickets only")
        return caller_unit
    return wanted_unit


# ---- notifications to citizens and units ---------------------------------------------------


class Purpose(StrEnum):
    """What a notification tells (通知事项)."""

    REGISTERED = "registered"  # citizen: the ticket number
    ACCEPTED = "accepted"  # citizen: a unit is handling it
    REPLIED = "replied"  # citizen: the unit's reply (Art 13)
    REVISIT = "revisit"  # citizen: the revisit is recorded
    WORK_ORDER = "work_order"  # unit: a new work order
    WARNING = "warning"  # unit: a deadline is near
    OVERDUE = "overdue"  # unit: a deadline has passed


CITIZEN_PURPOSES = {
    "ticket.accepted": Purpose.ACCEPTED,
    "ticket.completed": Purpose.REPLIED,
    "evaluation.revisit_recorded": Purpose.REVISIT,
}
UNIT_PURPOSES = {
    "ticket.dispatched": Purpose.WORK_ORDER,
    "sla.warning": Purpose.WARNING,
    "sla.overdue": Purpose.OVERDUE,
}

# Chinese texts; the SMS sender signature (【天津12345】) is added by the provider.
TEMPLATES = {
    Purpose.REGISTERED: "您的诉求已受理，工单号{ticket_id}，可凭工单号查询办理进度：{link}",
    Purpose.ACCEPTED: "您的工单{ticket_id}已由承办单位签收，正在办理。",
    Purpose.REPLIED: "您的工单{ticket_id}已办结。办理结果：{result}。详情：{link}",
    Purpose.REVISIT: "您的工单{ticket_id}已完成回访，感谢您对12345热线的支持。",
    Purpose.WORK_ORDER: "新工单{ticket_id}已派至贵单位，请及时签收办理。",
    Purpose.WARNING: "工单{ticket_id}的{clock}时限即将届满（{due_at}），请抓紧办理。",
    Purpose.OVERDUE: "工单{ticket_id}的{clock}时限已超期（{due_at}），请立即办理。",
}
CLOCK_WORDS = {"dispatch": "派单", "acceptance": "签收", "completion": "办结"}
OPT_OUT_WORDS = frozenset({"退订", "TD", "td"})
OPT_OUT_REPLY = "已为您退订12345热线的消息通知；如需恢复，请回复“订阅”。"
OPT_IN_WORDS = frozenset({"订阅"})
OPT_IN_REPLY = "已为您恢复12345热线的消息通知。"


def render(purpose: Purpose, params: dict[str, str]) -> str:
    return TEMPLATES[purpose].format_map({k: v or "" for k, v in params.items()})


def is_urgent(purpose: Purpose, urgency: str | None) -> bool:
    """Urgent messages go out at night too: life-safety work orders and any overdue."""
    return purpose is Purpose.OVERDUE or (
        purpose is Purpose.WORK_ORDER and urgency == "life_safety"
    )


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """'22:00-07:00' → minutes since midnight (start, end); '' → no quiet hours."""
    if not text:
        return None
    match = re.fullmatch(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", text.strip())
    if match is None:
        raise ValueError(f"quiet hours {text!r}: use HH:MM-HH:MM, e.g. 22:00-07:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def after_quiet_hours(at: datetime, quiet: tuple[int, int] | None, tz: tzinfo) -> datetime:
    """``at``, or the end of the quiet hours (local time) when it falls inside them."""
    if quiet is None:
        return at
    start, end = quiet
    local = at.astimezone(tz)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return at
    ends = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(at.tzinfo)
