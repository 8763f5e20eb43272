"""Art 19 driven by the shared clock: a reminder the setting's days before valid_until,
the owner's confirmation renewing validity, and automatic withdrawal at valid_until —
durable and exactly once, also across a restart. The clock is moved, never slept on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.knowledge.handlers import scanner
from tests.conftest import (
    at,
    counted_due_loop,
    recorded_idle_waits,
    waits_double_then_start_over,
)
from tests.unit.knowledge.conftest import (
    ADMIN,
    HEPING,
    OPERATOR,
    T0,
    Harness,
    until,
)

VALID_UNTIL = T0 + timedelta(days=90)


async def test_the_owner_is_reminded_once_the_settings_days_before_expiry(
    harness: Harness,
) -> None:
    created = await harness.create(valid_until=VALID_UNTIL)
    harness.clock.set(VALID_UNTIL - timedelta(days=30, seconds=1))
    await harness.settle()
    assert harness.emitted("knowledge.expiring") == []
    harness.clock.advance(timedelta(seconds=1))
    await until(lambda: len(harness.emitted("knowledge.expiring")) == 1, "the reminder")
    harness.clock.advance(timedelta(days=1))
    await harness.settle()
    [reminder] = harness.emitted("knowledge.expiring", entry_id=created["entry_id"])
    assert reminder.payload["unit_id"] == "120101-housing"
    assert reminder.payload["valid_until"] == "2026-05-31T01:00:00Z"


async def test_reminder_days_follow_the_policy_setting(harness: Harness) -> None:
    r = await harness.call("GET", "/policy", OPERATOR)
    settings = r.json()["in_force"]["settings"]
    assert settings["reminder_days_before_expiry"] == 30
    r = await harness.call(
        "POST",
        "/policy/versions",
        ADMIN,
        {
            "effective_from": T0.isoformat(),
            "settings": {**settings, "reminder_days_before_expiry": 7},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["in_force"]["settings"]["reminder_days_before_expiry"] == 7
    await harness.create(valid_until=VALID_UNTIL)
    harness.clock.set(VALID_UNTIL - timedelta(days=8))
    await harness.settle()
    assert harness.emitted("knowledge.expiring") == []
    harness.clock.set(VALID_UNTIL - timedelta(days=7))
    await until(lambda: len(harness.emitted("knowledge.expiring")) == 1, "the reminder")


async def test_only_admin_changes_the_policy_and_never_in_the_past(harness: Harness) -> None:
    settings = (await harness.call("GET", "/policy", OPERATOR)).json()["in_force"]["settings"]
    body = {"effective_from": (T0 + timedelta(days=1)).isoformat(), "settings": settings}
    assert (await harness.call("POST", "/policy/versions", HEPING, body)).status_code == 403
    past = {**body, "effective_from": (T0 - timedelta(days=1)).isoformat()}
    assert (await harness.call("POST", "/policy/versions", ADMIN, past)).status_code == 422
    bad = {**body, "settings": {**settings, "update_request_period": "two days"}}
    assert (await harness.call("POST", "/policy/versions", ADMIN, bad)).status_code == 422


async def test_at_valid_until_the_entry_is_withdrawn_automatically_once(harness: Harness) -> None:
    created = await harness.create(valid_until=VALID_UNTIL)
    path = f"/entries/{created['entry_id']}"
    harness.clock.set(VALID_UNTIL - timedelta(seconds=1))
    await harness.settle()
    assert harness.emitted("knowledge.expired") == []
    assert (await harness.call("GET", path, OPERATOR)).status_code == 200
    harness.clock.set(VALID_UNTIL)
    await until(lambda: len(harness.emitted("knowledge.expired")) == 1, "expiry")
    got = (await harness.call("GET", path, HEPING)).json()
    assert got["status"] == "expired" and not got["valid"]
    assert (await harness.call("GET", path, OPERATOR)).status_code == 403
    r = await harness.call("GET", "/search?q=加装电梯", OPERATOR)
    assert r.json()["data"] == []
    harness.clock.advance(timedelta(days=30))
    await harness.settle()
    assert len(harness.emitted("knowledge.expired")) == 1
    versions = (await harness.call("GET", f"{path}/versions", HEPING)).json()["data"]
    assert [(v["change"], v["changed_by"]) for v in versions][-1] == ("expired", "system")


async def test_expiry_happens_exactly_once_across_a_restart(stopped_harness: Harness) -> None:
    h = stopped_harness
    async with h.running():
        created = await h.create(valid_until=VALID_UNTIL)
        await h.settle()
    # down while the reminder and the end of validity pass
    h.clock.set(VALID_UNTIL + timedelta(hours=3))
    async with h.running():
        await until(lambda: len(h.emitted("knowledge.expired")) == 1, "expiry after restart")
        await h.settle()
    async with h.running():  # a further restart repeats nothing
        h.clock.advance(timedelta(days=1))
        await h.settle()
        [expired] = h.emitted("knowledge.expired", entry_id=created["entry_id"])
        assert expired.payload["expired_at"] == (
            VALID_UNTIL + timedelta(hours=3)
        ).isoformat().replace("+00:00", "Z")
        # an entry already past its end is expired, not reminded
        assert h.emitted("knowledge.expiring") == []


async def test_confirming_renews_validity_from_the_confirmation_within_the_cap(
    harness: Harness,
) -> None:
    created = await harness.create(kind="answer_script", valid_until=VALID_UNTIL)
    path = f"/entries/{created['entry_id']}"
    harness.clock.set(VALID_UNTIL - timedelta(days=20))
    await until(lambda: len(harness.emitted("knowledge.expiring")) == 1, "the reminder")
    confirmed_at = harness.clock.now()
    too_long = at("2026-11-11 09:01")  # 6 months from the confirmation is 2026-11-11 09:00
    r = await harness.call("POST", f"{path}/confirm", HEPING, {"valid_until": too_long.isoformat()})
    assert r.status_code == 422 and r.json()["cap_months"] == 6
    r = await harness.call("POST", f"{path}/confirm", HEPING, {"note": "内容仍然有效"})
    assert r.status_code == 200, r.text
    renewed = r.json()
    assert renewed["valid_until"] == "2026-11-11T01:00:00Z"
    assert renewed["confirmed_at"] == confirmed_at.isoformat().replace("+00:00", "Z")
    assert renewed["version"] == 2
    # the old end passes without expiry; a new reminder comes 30 days before the new end
    harness.clock.set(VALID_UNTIL + timedelta(days=1))
    await harness.settle()
    assert harness.emitted("knowledge.expired") == []
    harness.clock.set(at("2026-10-12 09:00"))
    await until(lambda: len(harness.emitted("knowledge.expiring")) == 2, "the second reminder")
    await harness.settle()
    [renewal] = harness.emitted("knowledge.renewed")
    assert renewal.payload["valid_until"] == "2026-11-11T01:00:00Z"


async def test_an_expired_entry_revised_with_a_new_validity_can_be_published_again(
    harness: Harness,
) -> None:
    created = await harness.create(valid_until=VALID_UNTIL)
    path = f"/entries/{created['entry_id']}"
    harness.clock.set(VALID_UNTIL + timedelta(days=1))
    await until(lambda: len(harness.emitted("knowledge.expired")) == 1, "expiry")
    assert (await harness.call("POST", f"{path}/publish", HEPING)).status_code == 422
    new_from = harness.clock.now()
    r = await harness.call(
        "PATCH",
        path,
        HEPING,
        {
            "valid_from": new_from.isoformat(),
            "valid_until": (new_from + timedelta(days=100)).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    r = await harness.call("POST", f"{path}/publish", HEPING)
    assert r.status_code == 200 and r.json()["valid"]


async def test_an_idle_scanner_only_looks_and_acts_once_something_is_due(
    stopped_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, batches = counted_due_loop(monkeypatch, scanner, "next_due", "act_on_due", 0.01)
    async with stopped_harness.running():
        await until(lambda: looks.calls >= 5, "the idle polls")
        assert batches.calls == 0
        await stopped_harness.create(valid_until=VALID_UNTIL)
        stopped_harness.clock.set(VALID_UNTIL)
        await until(lambda: len(stopped_harness.emitted("knowledge.expired")) == 1, "expiry")
        assert batches.calls >= 1


async def test_an_idle_scanner_looks_less_and_less_often_until_it_acts(
    stopped_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each look that finds nothing doubles the wait for the next, up to the most; acting
    starts over (an idle knowledge process woke twice a second for this, a transaction a
    look)."""
    waits = recorded_idle_waits(monkeypatch, scanner)

    async def an_entry_expired() -> None:
        await stopped_harness.create(valid_until=VALID_UNTIL)
        stopped_harness.clock.set(VALID_UNTIL)
        await until(lambda: len(stopped_harness.emitted("knowledge.expired")) == 1, "expiry")

    async with stopped_harness.running():
        await waits_double_then_start_over(waits, until, an_entry_expired)


async def test_entries_due_but_locked_by_another_instance_do_not_make_the_scanner_spin(
    stopped_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks, batches = counted_due_loop(monkeypatch, scanner, "next_due", "act_on_due", 60.0)
    batches.returns = 0  # every due entry is another instance's
    async with stopped_harness.running():
        await stopped_harness.create(valid_until=VALID_UNTIL)
        await until(lambda: looks.calls >= 1, "a look")
        stopped_harness.clock.set(VALID_UNTIL)
        await until(lambda: batches.calls == 1, "a try at the due entry")
        seen = looks.calls
        await stopped_harness.settle()
        assert batches.calls == 1  # then it waits for the idle poll (or a wake-up)
        assert looks.calls == seen
