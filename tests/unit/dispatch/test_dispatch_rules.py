"""Dispatch's pure rules without I/O: returns (Art 10), determinations (Art 8), re-handling
(Art 14), co-units, suggestions and the catalog checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.dispatch.domain import (
    ART8_FUNCTIONAL_ONLY,
    ART10_1,
    ART10_2,
    ART10_3,
    CROSS_INDUSTRY_RULE,
    SAME_INDUSTRY_RULE,
    Assignment,
    CatalogEntry,
    CatalogMatter,
    DeterminationKind,
    KeywordIndex,
    Level,
    Policy,
    ReturnRequest,
    State,
    Unit,
    check_approvable,
    check_determination,
    check_rejection,
    confidence,
    suggest_matter,
    validate_catalog,
    validate_settings,
)
from services.dispatch.domain.policy import DEFAULT_POLICY
from shared.errors import Forbidden, IllegalTransition, InvalidInput
from shared.policy import PolicyVersions
from tests.conftest import at

T0 = at("2026-03-02 09:00")
DEADLINE = T0 + timedelta(minutes=30)

HEPING_HOUSING = Unit("120101-housing", "和平区住建委", Level.DISTRICT, True, "housing", "120101")
HEXI_HOUSING = Unit("120103-housing", "河西区住建委", Level.DISTRICT, True, "housing", "120103")
HEPING_URBAN = Unit("120101-urban", "和平区城管委", Level.DISTRICT, True, "urban_management")
HEPING_STREET = Unit("120101-street", "劝业场街道", Level.STREET, False, "grassroots", "120101")
QUALITY = CatalogMatter("HOUSE-001", "房屋质量问题", "general", functional_only=True)


def dispatched(**changes: object) -> Assignment:
    base = Assignment("TJ1", State.DISPATCHED, "120101-housing", dispatched_at=T0, dispatch_no=1)
    return replace(base, **changes)  # type: ignore[arg-type]


def ask_return(a: Assignment, **changes: object) -> Assignment:
    args: dict[str, object] = {
        "by_unit": "120101-housing",
        "at": T0 + timedelta(minutes=10),
        "acceptance_deadline": DEADLINE,
        "reason": "不属于本单位职责",
        "basis": "《天津市物业管理条例》第十条",
    }
    args.update(changes)
    return a.request_return(**args)  # type: ignore[arg-type]


# ---- returns (Art 10) -----------------------------------------------------------------


def test_a_return_goes_to_review() -> None:
    assert ask_return(dispatched()).state is State.RETURN_REVIEW


def test_a_return_needs_a_reason_and_a_basis() -> None:
    for field in ("reason", "basis"):
        with pytest.raises(InvalidInput) as refused:
            ask_return(dispatched(), **{field: "  "})
        assert refused.value.errors[0]["field"] == field


def test_only_the_assigned_unit_may_ask_to_return() -> None:
    with pytest.raises(Forbidden):
        ask_return(dispatched(), by_unit="120103-housing")


def test_a_co_unit_may_not_ask_to_return() -> None:
    with pytest.raises(Forbidden) as refused:
        ask_return(dispatched(co_unit_ids=("120101-urban",)), by_unit="120101-urban")
    assert "lead" in (refused.value.rule or "")


def test_no_return_after_acceptance() -> None:
    accepted = dispatched().accept(by_unit="120101-housing", at=T0 + timedelta(minutes=1))
    with pytest.raises(IllegalTransition) as refused:
        ask_return(accepted)
    assert refused.value.rule == "Art 10: return only before acceptance"


def test_no_return_after_the_acceptance_deadline() -> None:
    ask_return(dispatched(), at=DEADLINE)  # at the deadline is still in time
    with pytest.raises(IllegalTransition) as refused:
        ask_return(dispatched(), at=DEADLINE + timedelta(seconds=1))
    assert refused.value.rule == "Art 10: return only within the acceptance period"


def test_no_return_in_a_re_handling_round() -> None:
    with pytest.raises(IllegalTransition) as refused:
        ask_return(dispatched(round=2))
    assert "Art 14" in (refused.value.rule or "")


REQUEST = ReturnRequest("TJ1", "120101-housing", "不属于本单位职责", "权责清单第3项", T0)


def test_approval_is_refused_when_the_catalog_names_the_unit() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_approvable(REQUEST, catalog_unit_id="120101-housing", determined=False)
    assert refused.value.rule == ART10_1


def test_approval_is_refused_without_reason_or_basis() -> None:
    for missing in ({"reason": ""}, {"basis": " "}):
        with pytest.raises(IllegalTransition) as refused:
            check_approvable(replace(REQUEST, **missing), catalog_unit_id=None, determined=False)
        assert refused.value.rule == ART10_2


def test_approval_is_refused_when_a_determination_fixed_the_unit() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_approvable(REQUEST, catalog_unit_id="120101-urban", determined=True)
    assert refused.value.rule == ART10_3


def test_approval_is_allowed_otherwise() -> None:
    check_approvable(REQUEST, catalog_unit_id="120101-urban", determined=False)
    check_approvable(REQUEST, catalog_unit_id=None, determined=False)


def test_a_rejection_needs_a_written_reason() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_rejection(" ")
    assert refused.value.errors[0]["field"] == "reason"


def test_approved_return_goes_back_to_the_queue_and_rejected_to_the_unit() -> None:
    review = ask_return(dispatched(co_unit_ids=()))
    back = review.return_approved()
    assert back.state is State.PENDING_DISPATCH and back.unit_id is None
    again = back.dispatch("120101-urban", at=T0 + timedelta(hours=1))
    assert again.dispatch_no == 2 and again.state is State.DISPATCHED
    continues = review.return_rejected()
    assert continues.state is State.DISPATCHED and continues.unit_id == "120101-housing"
    assert continues.dispatched_at == T0  # clocks are not reset


# ---- re-handling (Art 14) -------------------------------------------------------------


def completed() -> Assignment:
    accepted = dispatched().accept(by_unit="120101-housing", at=T0)
    return accepted.complete(by_unit="120101-housing", at=T0 + timedelta(hours=1), contacted_at=T0)


def test_re_handling_goes_back_to_the_same_unit_once() -> None:
    later = T0 + timedelta(days=2)
    again = completed().rehandle(at=later)
    assert (again.state, again.round, again.unit_id) == (State.DISPATCHED, 2, "120101-housing")
    assert again.dispatched_at == later and again.accepted_at is None
    done = again.accept(by_unit="120101-housing", at=later).complete(
        by_unit="120101-housing", at=later + timedelta(hours=1), contacted_at=later
    )
    with pytest.raises(IllegalTransition) as refused:
        done.rehandle(at=later + timedelta(days=1))
    assert refused.value.rule == "Art 14: re-handling at most once"


def test_only_a_completed_ticket_is_re_handled() -> None:
    with pytest.raises(IllegalTransition):
        dispatched().rehandle(at=T0)


# ---- lead and co-units (Art 8) --------------------------------------------------------


def test_only_the_lead_accepts_and_replies_and_only_co_units_add_input() -> None:
    joint = dispatched(co_unit_ids=("120101-urban",))
    assert joint.may_see("120101-urban") and joint.may_see("120101-housing")
    assert not joint.may_see("120103-housing")
    with pytest.raises(Forbidden):
        joint.accept(by_unit="120101-urban", at=T0)
    accepted = joint.accept(by_unit="120101-housing", at=T0)
    with pytest.raises(Forbidden):
        accepted.complete(by_unit="120101-urban", at=T0, contacted_at=T0)
    joint.check_co_unit_input("120101-urban")
    with pytest.raises(Forbidden):
        joint.check_co_unit_input("120101-housing")


# ---- manual dispatch and determinations (Art 8) ---------------------------------------


def test_a_disputed_ticket_is_not_dispatched_by_hand() -> None:
    waiting = Assignment("TJ1", State.PENDING_DETERMINATION, None)
    with pytest.raises(IllegalTransition) as refused:
        waiting.dispatch_manually("120101-housing", at=T0)
    assert "determination" in (refused.value.rule or "")
    queued = Assignment("TJ1", State.PENDING_DISPATCH, None)
    assert queued.dispatch_manually("120101-housing", at=T0).dispatch_no == 1


def decide(**changes: object) -> DeterminationKind:
    args: dict[str, object] = {
        "matter": QUALITY,
        "lead": HEPING_HOUSING,
        "co_units": [],
        "decided_role": "authority",
        "referred_kind": None,
        "reason": "房屋位于和平区，由和平区住建委承办",
        "authority_industry": "housing",
    }
    args.update(changes)
    return check_determination(**args)  # type: ignore[arg-type]


def test_same_industry_cases_are_decided_by_the_authority() -> None:
    assert decide() is DeterminationKind.SAME_INDUSTRY
    with pytest.raises(Forbidden) as refused:
        decide(decided_role="agency")
    assert refused.value.rule == SAME_INDUSTRY_RULE
    with pytest.raises(Forbidden):
        decide(authority_industry="transport")
    with pytest.raises(Forbidden):  # an authority bound to no industry decides nothing
        decide(authority_industry=None)


def test_cross_industry_cases_are_decided_by_the_agency_with_co_units() -> None:
    kind = decide(decided_role="agency", co_units=[HEPING_URBAN])
    assert kind is DeterminationKind.CROSS_INDUSTRY
    with pytest.raises(Forbidden) as refused:
        decide(decided_role="authority", co_units=[HEPING_URBAN])
    assert refused.value.rule == CROSS_INDUSTRY_RULE
    with pytest.raises(InvalidInput) as missing:
        decide(decided_role="agency", referred_kind=DeterminationKind.CROSS_INDUSTRY)
    assert missing.value.errors[0]["field"] == "co_unit_ids"


def test_the_authority_names_one_unit_without_co_units() -> None:
    with pytest.raises(IllegalTransition):
        decide(co_units=[HEXI_HOUSING])


def test_a_determination_records_why() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(reason=" ")
    assert refused.value.errors[0]["field"] == "reason"


def test_a_determination_never_sends_a_functional_only_matter_to_a_street() -> None:
    with pytest.raises(IllegalTransition) as refused:
        decide(lead=HEPING_STREET, decided_role="authority", authority_industry="grassroots")
    assert refused.value.rule == ART8_FUNCTIONAL_ONLY


# ---- catalog --------------------------------------------------------------------------


def test_a_catalog_may_not_route_a_functional_only_matter_to_a_street() -> None:
    known = {u.unit_id: u for u in (HEPING_HOUSING, HEPING_STREET)}
    validate_catalog(known, [CatalogEntry(QUALITY, {"120101": "120101-housing"})])
    with pytest.raises(IllegalTransition) as refused:
        validate_catalog(known, [CatalogEntry(QUALITY, {"120101": "120101-street"})])
    assert refused.value.rule == ART8_FUNCTIONAL_ONLY
    with pytest.raises(InvalidInput) as unknown:
        validate_catalog(known, [CatalogEntry(QUALITY, {"120101": "nobody"})])
    assert unknown.value.errors[0]["field"] == "matters.HOUSE-001.responsible.120101"


# ---- suggestions ----------------------------------------------------------------------

INDEX = KeywordIndex.build(
    [
        CatalogMatter("WATER-001", "停水", "livelihood", keywords=("停水", "没水", "自来水")),
        CatalogMatter("HEAT-001", "供热温度不达标", "livelihood", keywords=("暖气", "不热")),
        CatalogMatter("HEAT-002", "供热管道漏水", "livelihood", keywords=("暖气", "漏水")),
    ]
)


def test_a_clear_text_is_suggested_with_confidence() -> None:
    found = suggest_matter("家里没水了，自来水停了", ["家里", "没水", "自来水"], INDEX, {})
    assert found.matter_code == "WATER-001" and found.confidence >= 0.6


def test_an_ambiguous_text_has_low_confidence() -> None:
    found = suggest_matter("暖气有问题", ["暖气", "问题"], INDEX, {})
    assert found.confidence < 0.6
    nothing = suggest_matter("你好", ["你好"], INDEX, {})
    assert nothing.matter_code is None and nothing.confidence == 0.0


def test_past_dispatches_tip_the_balance() -> None:
    history = {"暖气片": {"HEAT-002": 30}}
    found = suggest_matter("暖气片有问题", ["暖气片", "问题"], INDEX, history)
    assert found.matter_code == "HEAT-002"


def test_confidence_grows_with_support_and_falls_with_rivals() -> None:
    assert confidence(1, 0) < confidence(2, 0)
    assert confidence(2, 2) <= 0.5
    assert confidence(0, 0) == 0.0


# ---- policy ---------------------------------------------------------------------------


def test_the_policy_in_force_is_the_newest_effective_one() -> None:
    old = Policy(at("2026-01-01 00:00"), DEFAULT_POLICY)
    new = Policy(at("2026-06-01 00:00"), {**DEFAULT_POLICY, "suggestion_threshold": 0.8})
    versions = PolicyVersions([new, old])
    assert versions.in_force(at("2026-03-01 00:00")) is old
    assert versions.in_force(at("2026-07-01 00:00")).suggestion_threshold == 0.8
    assert str(old.completion_period("general", "10wd")) == "10wd"  # Art 11 statutory period
    with pytest.raises(ValueError):
        validate_settings({**DEFAULT_POLICY, "suggestion_threshold": 2})
