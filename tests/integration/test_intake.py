"""Intake through the gateway on the real PostgreSQL and Kafka, every service its own
process: all channels, answering on the spot (never dispatched), flags, call ratings,
the citizen's lookup following the ticket through dispatch, search, duplicates, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import TOPIC_TICKETS
from tests.integration.conftest import System, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PHONE = "13622223333"


def water_outage(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "wechat_mini",
        "type": "help",
        "matter_code": "WATER-001",
        "district": "120103",
        "address": "河西区友谊路街道某小区3号楼",
        "content": "从早上八点开始停水，家里有老人，请尽快恢复供水",
        "requester": {"name": "刘芳", "phone": PHONE},
    }
    body.update(overrides)
    return body


async def register(system: System, body: dict[str, Any], who: str = "operator") -> dict[str, Any]:
    async with system.client(who) as client:
        r = await client.post("/api/v1/intake/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def dispatch_state(system: System, ticket_id: str) -> str | None:
    async with system.client("operator") as op:
        r = await op.get(f"/api/v1/dispatch/tickets/{ticket_id}")
    return r.json()["state"] if r.status_code == 200 else None


async def lookup(system: System, ticket_id: str, phone: str = PHONE) -> Any:
    async with system.client("citizen_web") as citizen:
        return await citizen.post(
            "/api/v1/intake/tickets/lookup", json={"ticket_id": ticket_id, "phone": phone}
        )


async def ticket_events(system: System, ticket_id: str) -> list[str]:
    return [e.type for e in await system.events(TOPIC_TICKETS) if e.ticket_id == ticket_id]


async def as_citizen(system: System) -> None:
    """The web channel's demo login, which the shared ``system`` fixture does not make."""
    if "citizen_web" not in system.tokens:
        await system.login("citizen_web")


async def test_every_channel_registers_and_reaches_dispatch(system: System) -> None:
    await as_citizen(system)
    ids = []
    for channel in ("phone", "web", "wechat_official", "wechat_mini"):
        # a citizen client files only on its own channel (web); the operator transcribes
        # the others (WeChat accounts file through the channels service, tested there)
        who = "citizen_web" if channel == "web" else "operator"
        ids.append((await register(system, water_outage(channel=channel), who))["ticket_id"])
    for tid in ids:
        await eventually(lambda tid=tid: dispatch_state(system, tid), f"{tid} dispatched")


async def test_a_consultation_answered_on_the_spot_is_never_dispatched(system: System) -> None:
    answered = await register(
        system,
        {
            "channel": "phone",
            "type": "consultation",
            "matter_code": "SOC-002",
            "district": "120104",
            "content": "咨询灵活就业人员如何缴纳养老保险",
            "answer": {"text": "可在天津人社APP办理参保登记", "knowledge_entry_ids": ["KB-17"]},
        },
    )
    assert answered["status"] == "answered"
    tid = answered["ticket_id"]
    # a ticket registered after it is dispatched, so dispatch has caught up past it
    later = (await register(system, water_outage()))["ticket_id"]
    await eventually(lambda: dispatch_state(system, later), "the later ticket dispatched")
    assert await dispatch_state(system, tid) is None
    async with system.client("operator") as op:
        clocks = await op.get(f"/api/v1/sla/tickets/{tid}/clocks")
    assert clocks.status_code == 404  # no dispatch clock was ever started
    events = await eventually(lambda: ticket_events(system, tid), "ticket.answered on Kafka")
    assert events == ["ticket.answered"]


async def test_answering_anything_but_a_consultation_is_refused(system: System) -> None:
    async with system.client("operator") as op:
        r = await op.post(
            "/api/v1/intake/tickets", json=water_outage(answer={"text": "已经恢复供水了"})
        )
    assert r.status_code == 409
    assert r.json()["rule"] == "Art 6"


async def test_sensitive_content_is_flagged_and_listed_first(system: System) -> None:
    body = water_outage(
        type="complaint",
        matter_code="HOUSE-002",
        district="120101",
        content="物业断水一周，业主准备明天集体上访",
        requester={"name": "赵强", "phone": "13655556666"},
    )
    flagged = await register(system, body)
    assert flagged["flagged"] is True
    tid = flagged["ticket_id"]
    await register(system, water_outage())  # a newer, ordinary one

    async def on_kafka() -> list[str] | None:
        found = await ticket_events(system, tid)
        return found if "ticket.flagged" in found else None

    events = await eventually(on_kafka, "ticket.flagged on Kafka")
    assert events[:2] == ["ticket.registered", "ticket.flagged"]
    registered = [
        e
        for e in await system.events(TOPIC_TICKETS)
        if e.ticket_id == tid and e.type == "ticket.registered"
    ]
    assert registered[0].payload["flagged"] is True
    async with system.client("operator") as op:
        page = (await op.get("/api/v1/intake/tickets", params={"limit": 5})).json()
    assert page["data"][0]["ticket_id"] == tid


async def test_a_phone_call_is_rated_once(system: System) -> None:
    await as_citizen(system)
    tid = (await register(system, water_outage(channel="phone")))["ticket_id"]
    async with system.client("citizen_web") as ivr:
        r = await ivr.post(
            f"/api/v1/intake/tickets/{tid}/call-rating",
            json={"rating": "basically_satisfied", "phone": PHONE},
        )
        assert r.status_code == 201, r.text
        again = await ivr.post(
            f"/api/v1/intake/tickets/{tid}/call-rating",
            json={"rating": "satisfied", "phone": PHONE},
        )
    assert again.status_code == 409 and again.json()["rule"] == "Art 14 (1)"
    web = (await register(system, water_outage(channel="web")))["ticket_id"]
    async with system.client("operator") as op:
        r = await op.post(f"/api/v1/intake/tickets/{web}/call-rating", json={"rating": "satisfied"})
    assert r.status_code == 409

    async def rated() -> list[Any]:
        return [
            e
            for e in await system.events(TOPIC_TICKETS)
            if e.ticket_id == tid and e.type == "ticket.call_rated"
        ]

    [event] = await eventually(rated, "ticket.call_rated on Kafka")
    assert event.payload["rating"] == "basically_satisfied"
    assert event.payload["operator"] == "operator"


async def test_the_citizen_follows_the_ticket_to_its_reply(system: System) -> None:
    await as_citizen(system)
    tid = (await register(system, water_outage(channel="web"), "citizen_web"))["ticket_id"]
    first = await lookup(system, tid)
    assert first.status_code == 200, first.text
    assert "requester_phone" not in first.json()

    async def status(wanted: str) -> dict[str, Any] | None:
        # Polled as the operator: a citizen may look a ticket up only 10 times an hour (the
        # gateway's limit), and polling as the citizen spent them on a slow host (a 429).
        async with system.client("operator") as op:
            r = await op.get(f"/api/v1/intake/tickets/{tid}")
        return r.json() if r.json()["status"] == wanted else None  # type: ignore[no-any-return]

    await eventually(lambda: status("dispatched"), "dispatched in intake's read model")
    async with system.client("unit_water") as unit:
        accepted = await unit.post(f"/api/v1/dispatch/tickets/{tid}/accept")
        assert accepted.status_code == 200, accepted.text
        contacted = datetime.fromisoformat(accepted.json()["accepted_at"]) + timedelta(
            milliseconds=1
        )
        await eventually(lambda: status("accepted"), "accepted in intake's read model")
        done = await unit.post(
            f"/api/v1/dispatch/tickets/{tid}/complete",
            json={
                "policy_basis": "《天津市城市供水用水条例》",
                "progress": "已更换损坏阀门",
                "result": "已恢复供水",
                "contacted_at": contacted.isoformat(),
                "process": "接单后派抢修队到场检修",
                "feedback": "诉求人表示满意",
            },
        )
        assert done.status_code == 200, done.text
    await eventually(lambda: status("completed"), "completed in intake's read model")
    seen = await lookup(system, tid)
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["reply"]["result"] == "已恢复供水"
    assert body["status_label"] == "已办结"
    wrong = await lookup(system, tid, phone="13900000000")
    unknown = await lookup(system, "TJ20000101999999")
    assert wrong.status_code == unknown.status_code == 404


async def test_text_search_and_filters_on_postgresql(system: System) -> None:
    heating = await register(
        system,
        water_outage(
            matter_code="HEAT-001",
            district="120105",
            content="暖气片不热，卧室温度只有十四度，家里有八旬老人",
            requester={"name": "孙丽", "phone": "13677778888"},
        ),
    )
    async with system.client("operator") as op:
        found = (await op.get("/api/v1/intake/tickets", params={"q": "暖气 老人"})).json()
        assert [t["ticket_id"] for t in found["data"]] == [heating["ticket_id"]]
        assert found["data"][0]["requester_phone"] == "136****8888"
        none = (
            await op.get("/api/v1/intake/tickets", params={"q": "暖气", "district": "120101"})
        ).json()
        assert none["count"] == 0
        by_matter = (
            await op.get(
                "/api/v1/intake/tickets",
                params={"matter_code": "HEAT-001", "urgency": "livelihood"},
            )
        ).json()
        assert [t["ticket_id"] for t in by_matter["data"]] == [heating["ticket_id"]]
        bad = await op.get("/api/v1/intake/tickets", params={"channel": "fax"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "channel"


async def test_duplicates_are_hinted_and_full_reads_audited(system: System) -> None:
    body = water_outage(requester={"name": "周敏", "phone": "13611112222"})
    first = await register(system, body)
    second = await register(system, body)
    assert [d["ticket_id"] for d in second["likely_duplicates"]] == [first["ticket_id"]]
    async with system.client("operator") as op:
        detail = (await op.get(f"/api/v1/intake/tickets/{first['ticket_id']}")).json()
    assert detail["requester_phone"] == "13611112222"
    async with system.client("admin") as admin:
        reads = await admin.get(
            "/api/v1/intake/audit/requester-reads", params={"ticket_id": first["ticket_id"]}
        )
    assert reads.status_code == 200, reads.text
    # the duplicate hint at the second registration and the full read are both audited
    assert [(r["reader"], r["reader_role"]) for r in reads.json()["data"]] == [
        ("operator", "operator"),
        ("operator", "operator"),
    ]


async def test_an_admin_adds_a_keyword_version(system: System) -> None:
    async with system.client("operator") as op:
        policy = (await op.get("/api/v1/intake/policy")).json()
    settings = policy["in_force"]["settings"]
    settings["sensitive_keywords"]["mass_incident"].append("讨说法")
    async with system.client("admin") as admin:
        r = await admin.post(
            "/api/v1/intake/policy/versions",
            json={"settings": settings},  # in force at once
        )
    assert r.status_code == 201, r.text
    flagged = await register(system, water_outage(content="停水三天没人管，明天一起去讨说法"))
    assert flagged["flagged_keywords"] == ["讨说法"]
    async with system.client("operator") as op:
        refused = await op.post(
            "/api/v1/intake/policy/versions",
            json={"effective_from": datetime.now(UTC).isoformat(), "settings": settings},
        )
    assert refused.status_code == 403
