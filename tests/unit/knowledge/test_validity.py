"""Art 19: each kind of entry has a longest validity."""

from datetime import timedelta

import pytest

from services.knowledge.domain import EntryKind, check_validity, renewed_validity
from shared.errors import InvalidInput
from tests.conftest import at

START = at("2026-03-31 00:00")


@pytest.mark.parametrize(
    ("kind", "last_allowed", "too_late"),
    [
        (EntryKind.NORMATIVE_DOCUMENT, "2031-03-31 00:00", "2031-03-31 00:01"),
        (EntryKind.SERVICE_GUIDE, "2027-03-31 00:00", "2027-04-01 00:00"),
        (EntryKind.ANSWER_SCRIPT, "2026-09-30 00:00", "2026-09-30 00:01"),  # no Sept 31st
        (EntryKind.INTERPRETATION, "2027-03-31 00:00", "2027-03-31 00:01"),
        (EntryKind.OTHER, "2027-03-31 00:00", "2027-03-31 00:01"),
    ],
)
def test_validity_is_capped_by_kind(kind: EntryKind, last_allowed: str, too_late: str) -> None:
    check_validity(kind, START, at(last_allowed))
    with pytest.raises(InvalidInput) as refused:
        check_validity(kind, START, at(too_late))
    assert refused.value.errors[0]["field"] == "valid_until"
    assert "months" in refused.value.errors[0]["reason"]


@pytest.mark.parametrize(
    ("start", "kind", "last_allowed"),
    [
        ("2026-03-02 09:00", EntryKind.SERVICE_GUIDE, "2027-03-02 09:00"),  # early in the month
        ("2026-08-31 12:00", EntryKind.ANSWER_SCRIPT, "2027-02-28 12:00"),  # clamped
        ("2028-02-29 00:00", EntryKind.OTHER, "2029-02-28 00:00"),  # leap day
    ],
)
def test_the_cap_keeps_the_day_of_the_month(start: str, kind: EntryKind, last_allowed: str) -> None:
    check_validity(kind, at(start), at(last_allowed))
    with pytest.raises(InvalidInput):
        check_validity(kind, at(start), at(last_allowed) + timedelta(minutes=1))


def test_a_confirmation_renews_within_the_cap_counted_from_the_confirmation() -> None:
    confirmed = at("2026-08-20 10:00")
    assert renewed_validity(EntryKind.ANSWER_SCRIPT, confirmed, None) == at("2027-02-20 10:00")
    assert renewed_validity(EntryKind.ANSWER_SCRIPT, confirmed, at("2026-12-31 00:00")) == at(
        "2026-12-31 00:00"
    )
    with pytest.raises(InvalidInput) as refused:
        renewed_validity(EntryKind.ANSWER_SCRIPT, confirmed, at("2027-02-20 10:01"))
    assert refused.value.extra["cap_months"] == 6
    # a later revision of valid_until counts the cap from the confirmation, too
    check_validity(EntryKind.ANSWER_SCRIPT, START, at("2027-02-20 10:00"), confirmed)
    with pytest.raises(InvalidInput):
        check_validity(EntryKind.ANSWER_SCRIPT, START, at("2027-02-20 10:00"))
