"""One versioned-policy mechanism: which version is in force, and the one check a new
version must pass (past → 422 naming the field in Shanghai time; same date → 409)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from shared.errors import IllegalTransition, InvalidInput
from shared.policy import PolicyVersions
from tests.conftest import at


@dataclass(frozen=True)
class Version:
    effective_from: datetime
    name: str


FIRST = Version(at("2026-01-01 00:00"), "first")
LATER = Version(at("2026-06-01 00:00"), "later")


def test_the_version_in_force_is_the_newest_already_effective() -> None:
    versions = PolicyVersions([LATER, FIRST])
    assert versions.in_force(at("2026-05-31 23:59")) is FIRST
    assert versions.in_force(at("2026-06-01 00:00")) is LATER
    assert versions.in_force(at("2025-01-01 00:00")) is FIRST  # before any: the first
    assert list(versions) == [FIRST, LATER]


def test_without_stored_versions_the_default_is_in_force() -> None:
    assert PolicyVersions([], default=FIRST).in_force(at("2030-01-01 00:00")) is FIRST
    with pytest.raises(ValueError):
        PolicyVersions([])


def test_a_version_is_never_retroactive_and_the_refusal_reads_in_shanghai_time() -> None:
    now = at("2026-03-02 09:00")
    versions = PolicyVersions([FIRST])
    versions.check_new(now, now)
    with pytest.raises(InvalidInput) as refused:
        versions.check_new(now - timedelta(seconds=1), now)
    assert refused.value.errors[0]["field"] == "effective_from"
    assert "2026-03-02 08:59:59 Asia/Shanghai" in refused.value.detail


def test_one_version_per_effective_date() -> None:
    versions = PolicyVersions([FIRST, LATER])
    with pytest.raises(IllegalTransition):
        versions.check_new(LATER.effective_from, at("2026-03-02 09:00"))
