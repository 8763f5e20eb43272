"""Evaluation rules (Art 14, 23, 24). No I/O here."""

from __future__ import annotations

from enum import StrEnum

from shared.errors import IllegalTransition


class Rating(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class RevisitState(StrEnum):
    OPEN = "open"
    RATED = "rated"
    NOT_REQUIRED = "not_required"


# Art 14: praise and suggestion tickets are closed without a rating.
UNRATED_TYPES = frozenset({"praise", "suggestion"})


def initial_state(ticket_type: str) -> RevisitState:
    return RevisitState.NOT_REQUIRED if ticket_type in UNRATED_TYPES else RevisitState.OPEN


def check_can_rate(ticket_id: str, state: RevisitState) -> None:
    if state is RevisitState.NOT_REQUIRED:
        raise IllegalTransition(
            f"ticket {ticket_id} is a praise or suggestion and is closed without a rating",
            rule="Art 14: praise and suggestion tickets are not rated",
        )
    if state is RevisitState.RATED:
        raise IllegalTransition(f"ticket {ticket_id} has already been rated in this round")
