"""The unit's responsible staff (专人, Art 4): who accepts, handles, coordinates and replies,
each with deputies. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import InvalidInput

STAFF_RULE = (
    "Art 4: the unit names staff responsible for acceptance, handling, coordination and reply"
)


class Duty(StrEnum):
    ACCEPT = "accept"  # 受理
    HANDLE = "handle"  # 办理
    COORDINATE = "coordinate"  # 协调
    REPLY = "reply"  # 回复


@dataclass(frozen=True)
class StaffMember:
    username: str
    name: str
    duties: tuple[Duty, ...]
    deputy: bool = False
    phone: str | None = None  # the work phone notifications reach (Art 4)


def check_staff(staff: Sequence[StaffMember]) -> None:
    """Every duty has a responsible person (not only deputies); a person is named once."""
    names = [m.username for m in staff]
    for n, member in enumerate(staff):
        if names.index(member.username) != n:
            raise InvalidInput(f"staff.{n}.username", f"{member.username} is named twice")
        if not member.duties:
            raise InvalidInput(f"staff.{n}.duties", "name at least one duty", rule=STAFF_RULE)
    for duty in Duty:
        if not any(duty in m.duties and not m.deputy for m in staff):
            raise InvalidInput(
                "staff",
                f"no one is responsible for {duty.value} (deputies alone do not count)",
                rule=STAFF_RULE,
            )


def check_assignee(staff: Sequence[StaffMember], username: str) -> StaffMember:
    """A work order goes to one of the unit's staff who handles tickets (or deputises)."""
    for member in staff:
        if member.username == username:
            if Duty.HANDLE not in member.duties:
                raise InvalidInput(
                    "username", f"{username} is not named for handling", rule=STAFF_RULE
                )
            return member
    raise InvalidInput("username", f"{username} is not on the unit's staff list", rule=STAFF_RULE)
