"""Intake's policy settings (keywords, duplicate window, attachment limits): readable by
staff, versioned by effective date, added by admins only."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from services.intake.domain import DEFAULT_POLICY
from services.intake.handlers.policy import POLICY_CACHE, current_policy
from tests.unit.intake.conftest import Intake, statements_run, ticket


def settings(**changes: Any) -> dict[str, Any]:
    value = copy.deepcopy(DEFAULT_POLICY)
    value.update(changes)
    return value


async def add_version(
    intake: Intake, effective_from: str, body: dict[str, Any], who: str = "admin"
):  # noqa: ANN201
    return await intake.call(
        who, "POST", "/policy/versions", json={"effective_from": effective_from, "settings": body}
    )


async def test_the_default_policy_is_readable(intake: Intake) -> None:
    r = await intake.call("operator", "GET", "/policy")
    assert r.status_code == 200, r.text
    in_force = r.json()["in_force"]
    assert "自杀" in in_force["settings"]["sensitive_keywords"]["self_harm"]
    assert in_force["settings"]["duplicate_window"] == "24h"
    assert in_force["settings"]["attachments"] == {"max_count": 9, "max_url_length": 2048}


async def test_a_new_keyword_list_takes_effect_on_its_date(intake: Intake) -> None:
    keywords = copy.deepcopy(DEFAULT_POLICY["sensitive_keywords"])
    keywords["mass_incident"].append("讨说法")
    effective = intake.clock.now() + timedelta(days=1)
    r = await add_version(intake, effective.isoformat(), settings(sensitive_keywords=keywords))
    assert r.status_code == 201, r.text
    assert r.json()["versions"][-1]["created_by"] == "admin"
    content = "几十户业主明天一起去区政府讨说法"
    assert (await intake.register(ticket(content=content)))["flagged"] is False
    intake.advance(days=1)
    assert (await intake.register(ticket(content=content)))["flagged"] is True
    policy = (await intake.call("operator", "GET", "/policy")).json()
    assert len(policy["versions"]) == 2
    assert "讨说法" in policy["in_force"]["settings"]["sensitive_keywords"]["mass_incident"]


async def test_the_duplicate_window_is_a_setting(intake: Intake) -> None:
    now = intake.clock.now()
    assert (
        await add_version(intake, now.isoformat(), settings(duplicate_window="2h"))
    ).status_code == 201
    first = await intake.register(ticket())
    intake.advance(hours=3)
    assert (await intake.register(ticket()))["likely_duplicates"] == []
    assert first["likely_duplicates"] == []


async def test_attachment_limits_are_a_setting(intake: Intake) -> None:
    now = intake.clock.now()
    tight = settings(attachments={"max_count": 1, "max_url_length": 40})
    assert (await add_version(intake, now.isoformat(), tight)).status_code == 201
    two = [{"url": "https://a.cn/1"}, {"url": "https://a.cn/2"}]
    r = await intake.call("operator", "POST", "/tickets", json=ticket(attachments=two))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "attachments"


async def test_a_version_cannot_take_effect_in_the_past(intake: Intake) -> None:
    past = intake.clock.now() - timedelta(minutes=1)
    r = await add_version(intake, past.isoformat(), settings())
    assert r.status_code == 422
    assert "policy" in r.json()["rule"]


async def test_one_version_per_effective_date(intake: Intake) -> None:
    when = (intake.clock.now() + timedelta(days=3)).isoformat()
    assert (await add_version(intake, when, settings())).status_code == 201
    again = await add_version(intake, when, settings())
    assert again.status_code == 409
    assert again.json()["rule"] == "one policy version per effective date"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (settings(duplicate_window="1wd"), "settings.duplicate_window"),
        (settings(duplicate_window="soon"), "settings.duplicate_window"),
        (
            settings(attachments={"max_count": -1, "max_url_length": 100}),
            "settings.attachments.max_count",
        ),
        (
            settings(sensitive_keywords={"self_harm": [""]}),
            "settings.sensitive_keywords.self_harm.0",
        ),
        (
            settings(sensitive_keywords={"Self Harm": ["自杀"]}),
            "settings.sensitive_keywords.Self Harm.[key]",
        ),
        (settings(extra_knob=1), "settings.extra_knob"),
    ],
)
async def test_invalid_settings_are_refused_naming_the_field(
    intake: Intake, body: dict[str, Any], field: str
) -> None:
    when = (intake.clock.now() + timedelta(days=1)).isoformat()
    r = await add_version(intake, when, body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.text


@pytest.mark.parametrize("who", ["operator", "agency", "citizen_web"])
async def test_only_an_admin_changes_the_policy(intake: Intake, who: str) -> None:
    when = (intake.clock.now() + timedelta(days=1)).isoformat()
    assert (await add_version(intake, when, settings(), who=who)).status_code == 403


@pytest.mark.parametrize("who", ["citizen_web", "unit_water"])
async def test_channels_and_units_do_not_read_the_keyword_list(intake: Intake, who: str) -> None:
    assert (await intake.call(who, "GET", "/policy")).status_code == 403


async def test_a_version_without_a_date_is_in_force_at_once(intake: Intake) -> None:
    r = await intake.call(
        "admin", "POST", "/policy/versions", json={"settings": settings(duplicate_window="1h")}
    )
    assert r.status_code == 201, r.text
    assert r.json()["in_force"]["effective_from"].startswith(intake.clock.now().isoformat()[:19])
    policy = (await intake.call("operator", "GET", "/policy")).json()
    assert policy["in_force"]["settings"]["duplicate_window"] == "1h"


async def test_requests_that_find_the_policy_stale_together_read_it_once(intake: Intake) -> None:
    intake.ctx.extras[POLICY_CACHE].loaded_at = float("-inf")  # older than its period
    with statements_run(intake) as run:
        policies = await asyncio.gather(*(current_policy(intake.ctx) for _ in range(10)))
    assert sum("FROM policy_versions" in s for s in run) == 1
    assert len({id(p) for p in policies}) == 1
