"""Who must give a name and phone (Art 5), and what a phone number is."""

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import (
    RequesterMissing,
    check_requester,
    mask_phone,
    normalise_phone,
    ticket_number,
    ticket_serial,
)
from shared.calendar import SHANGHAI
from tests.conftest import at


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("022-23456789", "022-23456789"),
        ("02223456789", "022-23456789"),
        ("(022) 2345 6789", "022-23456789"),
        ("+86 22 2345 6789", "022-23456789"),
        ("0311-87654321", "0311-87654321"),
        ("031187654321", "0311-87654321"),
        ("010-6512345", "010-6512345"),
    ],
)
def test_valid_phone_numbers_are_normalised(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["12812345678", "1381234567", "138123456789", "abc", "110", "022-123456", "0221234567890"],
)
def test_invalid_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(raw)


@pytest.mark.parametrize("ticket_type", ["complaint", "help", "report"])
def test_contact_is_required_for_types_that_need_follow_up(ticket_type: str) -> None:
    with pytest.raises(RequesterMissing) as missing:
        check_requester(ticket_type, "张三", None, anonymous=False, anonymous_allowed=False)
    assert missing.value.field == "requester.phone"
    with pytest.raises(RequesterMissing) as missing:
        check_requester(ticket_type, None, "13812345678", anonymous=False, anonymous_allowed=False)
    assert missing.value.field == "requester.name"


@pytest.mark.parametrize("ticket_type", ["consultation", "suggestion", "praise"])
def test_contact_is_optional_for_consultations_suggestions_and_praise(ticket_type: str) -> None:
    check_requester(ticket_type, None, None, anonymous=False, anonymous_allowed=False)


def test_anonymity_only_where_the_catalog_allows_it() -> None:
    check_requester("report", None, None, anonymous=True, anonymous_allowed=True)
    with pytest.raises(RequesterMissing) as refused:
        check_requester("report", None, None, anonymous=True, anonymous_allowed=False)
    assert refused.value.field == "anonymous"


def test_ticket_number_uses_the_shanghai_date() -> None:
    # 2026-01-15 23:30 in Shanghai is still the 15th there, though the 15th 15:30 UTC
    assert ticket_number(123, at("2026-01-15 23:30")) == "TJ20260115000123"
    assert ticket_number(7, at("2026-01-16 00:10")) == "TJ20260116000007"


def test_ticket_numbers_change_date_at_shanghai_midnight_whatever_came_before() -> None:
    # the prefix of the last day numbered is kept: a time on either side of its bounds,
    # in any order and in any zone, still gets its own Shanghai date
    midnight = datetime(2026, 1, 16, tzinfo=SHANGHAI)
    tick = timedelta(microseconds=1)
    for when, day in [
        (midnight - tick, "20260115"),
        (midnight, "20260116"),
        (midnight - tick, "20260115"),
        (midnight + timedelta(days=1) - tick, "20260116"),
        (midnight + timedelta(days=1), "20260117"),
        (midnight.astimezone(UTC), "20260116"),
        ((midnight - tick).astimezone(UTC), "20260115"),
        (midnight - timedelta(days=400), "20241212"),
    ]:
        assert ticket_number(1, when) == f"TJ{day}000001", when


@pytest.mark.parametrize("serial", [1, 123, 999_999, 1_000_000, 2**31 - 1])
def test_a_ticket_number_gives_its_serial_back(serial: int) -> None:
    assert ticket_serial(ticket_number(serial, at("2026-01-15 23:30"))) == serial


@pytest.mark.parametrize(
    "text",
    [
        "",
        "TJ20260115",
        "TJ2026011500012",  # five digits: a serial has six or more
        "TJ20260115000123 ",
        "tj20260115000123",
        "TJ2026O115000123",
        "TJ20260115００0123",  # full-width digits
        "TJ20260115٠٠٠١٢٣",  # Arabic-Indic digits, which int() would read
        "TJ202601152147483648",  # beyond tickets.id's largest value
        "TJ2026011500000000001",
    ],
)
def test_a_text_no_ticket_number_reads_as_has_no_serial(text: str) -> None:
    assert ticket_serial(text) is None


def test_phone_masking() -> None:
    assert mask_phone("13812341234") == "138****1234"
