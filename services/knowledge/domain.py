"""Knowledge base rules (Art 15–20). No I/O here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from shared.calendar import SHANGHAI
from shared.errors import InvalidInput


class EntryKind(StrEnum):
    NORMATIVE_DOCUMENT = "normative_document"  # 规范性文件
    SERVICE_GUIDE = "service_guide"  # 办事指南
    ANSWER_SCRIPT = "answer_script"  # 答复口径
    INTERPRETATION = "interpretation"  # 业务解读
    OTHER = "other"  # 其他


# Art 19: the longest validity of each kind, in months.
VALIDITY_CAP_MONTHS: dict[EntryKind, int] = {
    EntryKind.NORMATIVE_DOCUMENT: 60,
    EntryKind.SERVICE_GUIDE: 12,
    EntryKind.ANSWER_SCRIPT: 6,
    EntryKind.INTERPRETATION: 12,
    EntryKind.OTHER: 12,
}


def add_months(t: datetime, months: int) -> datetime:
    """Same local day ``months`` later (clamped to the month's end), in Shanghai time."""
    local = t.astimezone(SHANGHAI)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    for day in range(local.day, 27, -1):
        try:
            return local.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return local.replace(year=year, month=month, day=28)


def check_validity(kind: EntryKind, valid_from: datetime, valid_until: datetime) -> None:
    if valid_until <= valid_from:
        raise InvalidInput("valid_until", "must be after valid_from")
    cap = VALIDITY_CAP_MONTHS[kind]
    if valid_until > add_months(valid_from, cap):
        raise InvalidInput(
            "valid_until",
            f"a {kind.value} entry is valid for at most {cap} months (Art 19)",
            cap_months=cap,
        )
