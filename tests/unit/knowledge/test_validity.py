"""Art 19: each kind of entry has a longest validity."""

import pytest

from services.knowledge.domain import EntryKind, check_validity
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
