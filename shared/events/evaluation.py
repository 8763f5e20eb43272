"""Evaluation, supervision and monitoring events (hotline.evaluation)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from shared.events.base import (
    Event,
    event,
)


@event
class RevisitRecorded(Event):
    TYPE = "evaluation.revisit_recorded"
    ticket_id: str
    rating: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    resolved: bool
    recorded_at: AwareDatetime
