"""The dispatch catalog (派单目录, Art 7) and where a ticket goes (Art 8). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.errors import IllegalTransition, InvalidInput

ART8_FUNCTIONAL_ONLY = "Art 8: functional_only matters never go to street level"


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
    active: bool = True


@dataclass(frozen=True)
class CatalogMatter:
    """派单目录 entry."""

    code: str
    name: str
    default_urgency: str
    functional_only: bool = False
    statutory_period: str | None = None
    anonymous_allowed: bool = False
    keywords: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class CatalogEntry:
    """A matter with the unit responsible for it in each district (district → unit_id)."""

    matter: CatalogMatter
    responsible: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    unit_id: str | None
    reason: str
    # True when the catalog itself leaves the unit open (no unit in any district): such a
    # matter always goes to determination, never to a guess.
    needs_determination: bool = True


def route(
    matter: CatalogMatter | None, responsible: Unit | None, *, names_any_unit: bool = True
) -> Route:
    """Art 7, 8: clear responsibility → the catalog's unit; otherwise determination."""
    if matter is None or not matter.active:
        return Route(None, "matter is not in the dispatch catalog", needs_determination=False)
    if responsible is None:
        return Route(
            None,
            "the catalog names no responsible unit for this district",
            needs_determination=not names_any_unit,
        )
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
            rule=ART8_FUNCTIONAL_ONLY,
        )
    if not unit.active:
        raise IllegalTransition(
            f"unit {unit.unit_id} is no longer active", rule="Art 7: dispatch to active units"
        )


def validate_catalog(units: Mapping[str, Unit], entries: Sequence[CatalogEntry]) -> None:
    """A catalog (after a change) must route only to known units, and never a
    functional-only matter to a street office."""
    for unit in units.values():
        if unit.parent_id is not None and unit.parent_id not in units:
            raise InvalidInput(f"units.{unit.unit_id}.parent_id", f"unknown unit {unit.parent_id}")
    for entry in entries:
        for district, unit_id in entry.responsible.items():
            target = units.get(unit_id)
            where = f"matters.{entry.matter.code}.responsible.{district}"
            if target is None:
                raise InvalidInput(where, f"unknown unit {unit_id}")
            if entry.matter.active:
                check_dispatch_target(entry.matter, target)


def unit_in_use(unit_id: str, entries: Sequence[CatalogEntry]) -> str | None:
    """The first active matter naming ``unit_id`` as responsible, if any."""
    for entry in entries:
        if entry.matter.active and unit_id in entry.responsible.values():
            return entry.matter.code
    return None


def expand_catalog(data: dict[str, Any]) -> tuple[list[Unit], list[CatalogEntry]]:
    """The starter catalog file → units and entries.

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
    entries: list[CatalogEntry] = []
    for m in data["matters"]:
        matter = CatalogMatter(
            m["code"],
            m["name"],
            m["default_urgency"],
            m.get("functional_only", False),
            m.get("statutory_period"),
            m.get("anonymous_allowed", False),
            tuple(m.get("keywords", ())),
        )
        responsible: dict[str, str] = {}
        kind, _, target = (m.get("responsible") or "").partition(":")
        for d in data["districts"]:
            if kind == "city":
                responsible[d["code"]] = target
            elif kind == "district":
                responsible[d["code"]] = f"{d['code']}-{target}"
            elif kind == "street":
                responsible[d["code"]] = f"{d['code']}-street"
        entries.append(CatalogEntry(matter, responsible))
    return units, entries
