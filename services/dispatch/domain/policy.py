"""Dispatch's policy settings (RULES.md: values the rules leave open are versioned
settings, not constants). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from shared.calendar import Period
from shared.policy import REGULATION_IN_FORCE

DEFAULT_POLICY: dict[str, Any] = {
    # Suggestions below this confidence go to the manual queue instead of being dispatched.
    "suggestion_threshold": 0.6,
    # Used only until the SLA service publishes the clock's deadline (sla.deadline_set);
    # the same defaults as the SLA policy (Art 9, 11).
    "acceptance_periods": {"life_safety": "15m", "livelihood": "30m", "general": "1wd"},
    "completion_periods": {"life_safety": "2h", "livelihood": "24h", "general": "7wd"},
}
DEFAULT_POLICY_EFFECTIVE_FROM = REGULATION_IN_FORCE  # the rules' own numbers, Art 31

# a period's text read once (a Period is immutable): every dispatch reads one
parse_period = lru_cache(maxsize=256)(Period.parse)


@dataclass(frozen=True)
class Policy:
    effective_from: datetime
    settings: dict[str, Any]

    @property
    def suggestion_threshold(self) -> float:
        return float(
            self.settings.get("suggestion_threshold", DEFAULT_POLICY["suggestion_threshold"])
        )

    def acceptance_period(self, urgency: str) -> Period:
        periods = self.settings.get("acceptance_periods", DEFAULT_POLICY["acceptance_periods"])
        return parse_period(periods[urgency])

    def completion_period(self, urgency: str, statutory_period: str | None) -> Period:
        # Art 11: a period set by law replaces the default completion period.
        if statutory_period:
            return parse_period(statutory_period)
        periods = self.settings.get("completion_periods", DEFAULT_POLICY["completion_periods"])
        return parse_period(periods[urgency])


def validate_settings(settings: dict[str, Any]) -> None:
    """Raises ValueError naming the first bad setting."""
    threshold = settings.get("suggestion_threshold")
    if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ValueError("suggestion_threshold must be a number in (0, 1]")
    for key in ("acceptance_periods", "completion_periods"):
        periods = settings.get(key)
        if not isinstance(periods, dict):
            raise ValueError(f"{key} must map each urgency class to a period")
        for urgency in ("life_safety", "livelihood", "general"):
            if urgency not in periods:
                raise ValueError(f"{key}.{urgency} is missing")
            Period.parse(periods[urgency])
