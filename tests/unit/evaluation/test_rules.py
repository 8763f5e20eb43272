"""The pure rules of domain.py, without I/O."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.evaluation.domain import (
    DEFAULT_POLICY,
    EvidenceLimits,
    ExemptionState,
    HotspotStep,
    PolicySettings,
    Rating,
    RevisitState,
    ScoreWeights,
    SupervisionKind,
    addressee,
    check_can_decide,
    check_can_file_exemption,
    check_evidence_count,
    check_evidence_file,
    composite_score,
    hotspot_step,
    initial_state,
    state_after_rating,
)
from shared.errors import IllegalTransition, InvalidInput
from tests.conftest import at

T = at("2026-03-02 09:00")
WEIGHTS = ScoreWeights.model_validate(DEFAULT_POLICY["score_weights"])


@pytest.mark.parametrize(
    ("type_", "state"),
    [
        ("praise", "not_required"),
        ("suggestion", "not_required"),
        ("complaint", "open"),
        ("consultation", "open"),
    ],
)
def test_praise_and_suggestions_need_no_revisit(type_: str, state: str) -> None:
    assert initial_state(type_) == state


def test_only_a_first_dissatisfied_rating_waits_for_a_decision() -> None:
    assert state_after_rating(1, Rating.DISSATISFIED) is RevisitState.AWAITING_DECISION
    assert state_after_rating(2, Rating.DISSATISFIED) is RevisitState.CLOSED
    assert state_after_rating(1, Rating.BASICALLY_SATISFIED) is RevisitState.CLOSED


def test_re_handling_is_limited_to_once() -> None:
    check_can_decide("T", 1, RevisitState.AWAITING_DECISION)
    for round_, state in [
        (1, RevisitState.SENT_BACK),
        (2, RevisitState.AWAITING_DECISION),
        (2, RevisitState.CLOSED),
    ]:
        with pytest.raises(IllegalTransition, match="once"):
            check_can_decide("T", round_, state)
    with pytest.raises(IllegalTransition):
        check_can_decide("T", 1, RevisitState.CLOSED)


def test_written_supervision_goes_to_the_parent() -> None:
    assert addressee(SupervisionKind.WRITTEN, "district-x", "city-x") == "city-x"
    assert addressee(SupervisionKind.WRITTEN, "city-x", None) == "city-x"
    assert addressee(SupervisionKind.TICKET, "district-x", "city-x") == "district-x"


def test_hotspot_steps() -> None:
    assert hotspot_step(None, T, 9, 10) is HotspotStep.NONE
    assert hotspot_step(None, T, 10, 10) is HotspotStep.OPEN
    assert hotspot_step(T + timedelta(minutes=1), T, 11, 10) is HotspotStep.JOIN
    assert hotspot_step(T, T, 10, 10) is HotspotStep.OPEN  # the old one has expired


def test_composite_renormalises_over_the_figures_that_have_tickets() -> None:
    rates = {
        "on_time_acceptance": 0.5,
        "on_time_completion": 0.0,
        "satisfaction": None,
        "resolution": None,
    }
    assert composite_score(rates, WEIGHTS) == 20.0
    assert composite_score(dict.fromkeys(rates), WEIGHTS) is None
    full = {
        "on_time_acceptance": 1.0,
        "on_time_completion": 1.0,
        "satisfaction": 0.5,
        "resolution": 0.0,
    }
    assert composite_score(full, WEIGHTS) == 65.0


def test_policy_settings_are_validated() -> None:
    PolicySettings.model_validate(DEFAULT_POLICY)
    for broken in (
        {**DEFAULT_POLICY, "revisit_due": "2 days"},
        {**DEFAULT_POLICY, "hotspot": {"window": "1h", "threshold": 1}},
        {**DEFAULT_POLICY, "score_weights": dict.fromkeys(DEFAULT_POLICY["score_weights"], 0)},
        {
            **DEFAULT_POLICY,
            "score_weights": {**DEFAULT_POLICY["score_weights"], "satisfaction": -1},
        },
        {**DEFAULT_POLICY, "unknown": 1},
    ):
        with pytest.raises(ValidationError):
            PolicySettings.model_validate(broken)


def test_evidence_limits() -> None:
    limits = EvidenceLimits(2, 100, frozenset({"application/pdf"}))
    check_evidence_count(2, limits)
    check_evidence_file("a.pdf", "application/pdf", limits)
    for call in (
        lambda: check_evidence_count(0, limits),
        lambda: check_evidence_count(3, limits),
        lambda: check_evidence_file("a.exe", "application/x-msdownload", limits),
        lambda: check_evidence_file("  ", "application/pdf", limits),
    ):
        with pytest.raises(InvalidInput):
            call()


def test_one_exemption_per_dissatisfied_rating() -> None:
    check_can_file_exemption("T", "dissatisfied", None)
    with pytest.raises(IllegalTransition, match="already filed"):
        check_can_file_exemption("T", "dissatisfied", ExemptionState.REJECTED)
    with pytest.raises(IllegalTransition, match="dissatisfied"):
        check_can_file_exemption("T", "satisfied", None)
