"""Dispatch's pure rules: where a ticket goes (Art 7, 8) and how an assignment moves
(accept, complete — Art 11, 13). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import Forbidden, IllegalTransition, InvalidInput


class State(StrEnum):
    PENDING_DISPATCH = "pending_dispatch"
    PENDING_DETERMINATION = "pending_determination"  # 职责界定
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    COMPLETED = "completed"


class Level(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"  # 乡镇/街道, grassroots


@dataclass(frozen=True)
class Unit:
    """承办单位."""

    unit_id: str
    name: str
    level: Level
    functional: bool
    industry: str | None = None
    district: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class CatalogMatter:
    """派单目录 entry."""

    code: str
    name: str
    default_urgency: str
    functional_only: bool = False
    statutory_period: str | None = None
    anonymous_allowed: bool = False


@dataclass(frozen=True)
class Route:
    unit_id: str | None
    reason: str


def route(matter: CatalogMatter | None, responsible: Unit | None) -> Route:
    """Art 7, 8: clear responsibility → the catalog's unit; otherwise determination."""
    if matter is None:
        return Route(None, "matter is not in the dispatch catalog")
    if responsible is None:
        return Route(None, "the catalog names no responsible unit for this district")
    try:
        check_dispatch_target(matter, responsible)
    except IllegalTransition as refused:
        return Route(None, refused.detail)
    return Route(responsible.unit_id, "dispatched per catalog")


def check_dispatch_target(matter: CatalogMatter, unit: Unit) -> None:
    # Art 8: a matter for functional departments is never pushed down to a street.
    if matter.functional_only and unit.level is Level.STREET:
        raise IllegalTransition(
            f"matter {matter.code} is functional-only and may not go to street-level unit "
            f"{unit.unit_id}",
            rule="Art 8: functional_only matters never go to street level",
        )


@dataclass(frozen=True)
class Assignment:
    """A ticket's assignment to a handling unit, and where it stands."""

    ticket_id: str
    state: State
    unit_id: str | None
    round: int = 1
    dispatched_at: datetime | None = None
    accepted_at: datetime | None = None
    completed_at: datetime | None = None

    def _check_unit(self, unit_id: str | None) -> None:
        if unit_id is not None and unit_id != self.unit_id:
            raise Forbidden(f"ticket {self.ticket_id} is assigned to another unit")

    def accept(self, *, by_unit: str | None, at: datetime) -> Assignment:
        """接收 (Art 11). ``by_unit`` is None when the agency records it on the unit's behalf."""
        self._check_unit(by_unit)
        if self.state is not State.DISPATCHED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only a dispatched ticket "
                "can be accepted",
                rule="life cycle: dispatched → accepted",
            )
        return replace(self, state=State.ACCEPTED, accepted_at=at)

    def complete(self, *, by_unit: str | None, at: datetime, contacted_at: datetime) -> Assignment:
        """办结/答复 (Art 13)."""
        self._check_unit(by_unit)
        if self.state is not State.ACCEPTED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only an accepted ticket "
                "can be completed",
                rule="life cycle: accepted → completed",
            )
        assert self.accepted_at is not None
        # Art 13: no "closed before handled" — contact lies between acceptance and reply.
        if not self.accepted_at <= contacted_at <= at:
            raise InvalidInput(
                "contacted_at",
                "must lie between acceptance and the reply (Art 13)",
            )
        return replace(self, state=State.COMPLETED, completed_at=at)


def expand_catalog(
    data: dict[str, Any],
) -> tuple[list[Unit], list[CatalogMatter], list[tuple[str, str, str]]]:
    """The starter catalog file → units, matters and (matter, district, unit) rows.

    ``responsible`` is ``city:<unit_id>`` (one city-wide unit), ``district:<role>`` (that
    district's bureau), ``street`` (the district's street office) or null (no unit:
    every ticket goes to determination)."""
    city_by_industry = {u["industry"]: u["unit_id"] for u in data["city_units"]}
    units = [
        Unit(u["unit_id"], u["name"], Level.CITY, u["functional"], u["industry"])
        for u in data["city_units"]
    ]
    for d in data["districts"]:
        for role in data["district_roles"]:
            units.append(
                Unit(
                    f"{d['code']}-{role['role']}",
                    f"{d['name']}{role['name']}",
                    Level.DISTRICT,
                    role["functional"],
                    role["industry"],
                    d["code"],
                    city_by_industry.get(role["industry"]),
                )
            )
        units.append(
            Unit(
                f"{d['code']}-street",
                f"{d['name']}{d['street']}",
                Level.STREET,
                False,
                "grassroots",
                d["code"],
                f"{d['code']}-urban",
            )
        )
    matters: list[CatalogMatter] = []
    rows: list[tuple[str, str, str]] = []
    for m in data["matters"]:
        matters.append(
            CatalogMatter(
                m["code"],
                m["name"],
                m["default_urgency"],
                m.get("functional_only", False),
                m.get("statutory_period"),
                m.get("anonymous_allowed", False),
            )
        )
        responsible = m.get("responsible")
        for d in data["districts"]:
            if responsible is None:
                continue
            kind, _, target = responsible.partition(":")
            unit_id = {
                "city": target,
                "district": f"{d['code']}-{target}",
                "street": f"{d['code']}-street",
            }[kind]
            rows.append((m["code"], d["code"], unit_id))
    return units, matters, rows
