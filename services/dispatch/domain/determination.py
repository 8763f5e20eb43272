"""Determinations of responsibility (职责界定, Art 8): who may decide what. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.dispatch.domain.catalog import CatalogMatter, Unit, check_dispatch_target
from shared.errors import Forbidden, IllegalTransition, InvalidInput

SAME_INDUSTRY_RULE = (
    "Art 8: same-industry, multi-district cases are decided by the city-level industry authority"
)
CROSS_INDUSTRY_RULE = (
    "Art 8: cross-industry cases are decided jointly by the government-services department, "
    "the agency and the industry authorities concerned, naming a lead and co-units"
)
GOVSERVICE = "govservice"
AGENCY = "agency"


class DeterminationKind(StrEnum):
    SAME_INDUSTRY = "same_industry"
    CROSS_INDUSTRY = "cross_industry"


def kind_of(units: Sequence[Unit]) -> DeterminationKind:
    industries = {u.industry for u in units}
    return (
        DeterminationKind.SAME_INDUSTRY
        if len(industries) <= 1
        else DeterminationKind.CROSS_INDUSTRY
    )


def check_determination(
    *,
    matter: CatalogMatter | None,
    lead: Unit,
    co_units: Sequence[Unit],
    decided_role: str,
    referred_kind: DeterminationKind | None,
    reason: str,
    authority_industry: str | None = None,
) -> DeterminationKind:
    """Who decides follows the kind of case (Art 8): the kind named when the ticket was
    referred, or else the one the chosen units make. Returns the kind decided."""
    if not reason.strip():
        raise InvalidInput("reason", "a determination records why (Art 8)")
    if lead.unit_id in {u.unit_id for u in co_units}:
        raise InvalidInput("co_unit_ids", "must not include the lead unit")
    kind = referred_kind or kind_of([lead, *co_units])
    if kind is DeterminationKind.SAME_INDUSTRY:
        if decided_role != "authority":
            raise Forbidden(
                "a same-industry case is decided by the authority", rule=SAME_INDUSTRY_RULE
            )
        if co_units:
            raise IllegalTransition(
                "the industry authority names one handling unit; co-units are decided "
                "jointly by the agency",
                rule=CROSS_INDUSTRY_RULE,
            )
        if authority_industry is None or lead.industry != authority_industry:
            raise Forbidden(
                f"the {authority_industry} authority may not decide a {lead.industry} case",
                rule=SAME_INDUSTRY_RULE,
            )
    else:
        if decided_role not in (AGENCY, GOVSERVICE):
            raise Forbidden(
                "a cross-industry case is decided jointly by the government-services "
                "department and the agency",
                rule=CROSS_INDUSTRY_RULE,
            )
        if not co_units:
            raise InvalidInput(
                "co_unit_ids", "a cross-industry determination names co-handling units (Art 8)"
            )
    if matter is not None:
        for unit in (lead, *co_units):
            check_dispatch_target(matter, unit)
    return kind


@dataclass(frozen=True)
class Position:
    """One party's recorded position in a joint determination (Art 8)."""

    party: str  # "govservice", "agency" or "authority:<industry>"
    lead_unit_id: str
    co_unit_ids: tuple[str, ...]


def authority_party(industry: str) -> str:
    return f"authority:{industry}"


def parties_required(units: Sequence[Unit]) -> list[str]:
    """市政务服务部门、热线工作机构会同相关市级行业主管部门 (Art 8): the department, the agency
    and the authority of every industry among the units named."""
    industries = sorted({u.industry for u in units if u.industry})
    return [GOVSERVICE, AGENCY, *(authority_party(i) for i in industries)]


def check_joint(positions: Mapping[str, Position], lead: Unit, co_units: Sequence[Unit]) -> None:
    """A cross-industry decision needs every party's recorded position, and it is the
    government-services department's (the competent authority, Art 3) that it follows."""
    missing = [p for p in parties_required([lead, *co_units]) if p not in positions]
    if missing:
        raise IllegalTransition(
            f"positions not yet recorded: {', '.join(missing)}", rule=CROSS_INDUSTRY_RULE
        )
    department = positions[GOVSERVICE]
    if department.lead_unit_id != lead.unit_id or set(department.co_unit_ids) != {
        u.unit_id for u in co_units
    }:
        raise IllegalTransition(
            "the decision must name the lead and co-units of the government-services "
            f"department's position ({department.lead_unit_id} with "
            f"{', '.join(department.co_unit_ids) or 'no co-units'})",
            rule=CROSS_INDUSTRY_RULE,
        )
