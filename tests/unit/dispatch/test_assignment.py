"""Dispatch rules and the assignment's state transitions (Art 8, 11, 13)."""

from datetime import timedelta

import pytest

from services.dispatch.domain import (
    Assignment,
    CatalogMatter,
    Level,
    State,
    Unit,
    check_dispatch_target,
    route,
)
from shared.errors import Forbidden, IllegalTransition, InvalidInput
from tests.conftest import at

STREET = Unit("120101-street", "和平区劝业场街道", Level.STREET, functional=False)
BUREAU = Unit("120101-housing", "和平区住房和建设委员会", Level.DISTRICT, functional=True)
QUALITY = CatalogMatter("HOUSE-001", "房屋质量问题", "general", functional_only=True)
STALLS = CatalogMatter("URBAN-001", "占道经营", "general")
T0 = at("2026-03-02 09:00")


def dispatched(unit: str = "120101-housing") -> Assignment:
    return Assignment("TJ20260302000001", State.DISPATCHED, unit, dispatched_at=T0)


def test_a_functional_only_matter_is_never_dispatched_to_a_street() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_dispatch_target(QUALITY, STREET)
    assert "Art 8" in (refused.value.rule or "")
    check_dispatch_target(QUALITY, BUREAU)
    check_dispatch_target(STALLS, STREET)


def test_routing_follows_the_catalog_or_holds_for_determination() -> None:
    assert route(STALLS, STREET).unit_id == "120101-street"
    assert route(None, BUREAU).unit_id is None
    assert route(STALLS, None).unit_id is None
    held = route(QUALITY, STREET)
    assert held.unit_id is None and "functional-only" in held.reason


def test_the_assigned_unit_accepts_once() -> None:
    accepted = dispatched().accept(by_unit="120101-housing", at=T0 + timedelta(minutes=5))
    assert accepted.state is State.ACCEPTED
    with pytest.raises(IllegalTransition):
        accepted.accept(by_unit="120101-housing", at=T0 + timedelta(minutes=6))


def test_another_unit_may_not_act_on_the_ticket() -> None:
    with pytest.raises(Forbidden):
        dispatched().accept(by_unit="120103-housing", at=T0)


def test_completion_needs_acceptance_first() -> None:
    with pytest.raises(IllegalTransition):
        dispatched().complete(by_unit="120101-housing", at=T0, contacted_at=T0)


def test_contact_time_must_lie_between_acceptance_and_reply() -> None:
    accepted = dispatched().accept(by_unit="120101-housing", at=T0)
    reply_at = T0 + timedelta(days=2)
    for contacted in (T0 - timedelta(minutes=1), reply_at + timedelta(minutes=1)):
        with pytest.raises(InvalidInput) as refused:
            accepted.complete(by_unit="120101-housing", at=reply_at, contacted_at=contacted)
        assert refused.value.errors[0]["field"] == "contacted_at"
    done = accepted.complete(
        by_unit="120101-housing", at=reply_at, contacted_at=T0 + timedelta(days=1)
    )
    assert done.state is State.COMPLETED and done.completed_at == reply_at
