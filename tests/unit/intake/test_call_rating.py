"""话务服务评价 (Art 14 (1)): after a phone call the requester rates the call, once."""

from __future__ import annotations

import pytest

from tests.unit.intake.conftest import Intake, ticket


async def rate(intake: Intake, ticket_id: str, who: str = "operator", **body: str):  # noqa: ANN201
    return await intake.call(who, "POST", f"/tickets/{ticket_id}/call-rating", json=body)


@pytest.mark.parametrize("rating", ["satisfied", "basically_satisfied", "dissatisfied"])
async def test_a_phone_call_is_rated_and_the_rating_emitted(intake: Intake, rating: str) -> None:
    tid = (await intake.register(ticket(channel="phone")))["ticket_id"]
    r = await rate(intake, tid, rating=rating)
    assert r.status_code == 201, r.text
    assert r.json()["rating"] == rating
    [rated] = await intake.emitted("ticket.call_rated")
    assert rated.ticket_id == tid
    assert rated.payload["rating"] == rating
    assert rated.payload["operator"] == "operator"  # who took the call
    detail = await intake.call("operator", "GET", f"/tickets/{tid}")
    assert detail.json()["call_rating"] == rating


async def test_a_call_is_rated_once(intake: Intake) -> None:
    tid = (await intake.register(ticket(channel="phone")))["ticket_id"]
    assert (await rate(intake, tid, rating="satisfied")).status_code == 201
    again = await rate(intake, tid, rating="dissatisfied")
    assert again.status_code == 409
    assert again.json()["rule"] == "Art 14 (1)"
    assert len(await intake.emitted("ticket.call_rated")) == 1


@pytest.mark.parametrize("channel", ["web", "wechat_official", "wechat_mini"])
async def test_only_phone_calls_are_rated(intake: Intake, channel: str) -> None:
    tid = (await intake.register(ticket(channel=channel)))["ticket_id"]
    r = await rate(intake, tid, rating="satisfied")
    assert r.status_code == 409
    assert r.json()["rule"] == "Art 14 (1)"
    assert await intake.emitted("ticket.call_rated") == []


async def test_a_rating_must_be_one_of_the_three(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    r = await rate(intake, tid, rating="excellent")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "rating"


async def test_a_citizen_channel_rates_only_with_the_phone_the_ticket_was_filed_with(
    intake: Intake,
) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    missing = await rate(intake, tid, who="citizen_web", rating="satisfied")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "phone"
    wrong = await rate(intake, tid, who="citizen_web", rating="satisfied", phone="13800000000")
    unknown = await rate(
        intake, "TJ20260302999999", who="citizen_web", rating="satisfied", phone="13920001234"
    )
    assert wrong.status_code == unknown.status_code == 404
    ok = await rate(intake, tid, who="citizen_web", rating="satisfied", phone="13920001234")
    assert ok.status_code == 201


@pytest.mark.parametrize("who", ["agency", "unit_water", "supervisor"])
async def test_other_roles_do_not_rate_calls(intake: Intake, who: str) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    assert (await rate(intake, tid, who=who, rating="satisfied")).status_code == 403
