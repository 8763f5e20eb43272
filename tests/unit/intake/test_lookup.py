"""A citizen looks a ticket up by its number and the phone it was filed with (Art 28):
status and reply, kept current from the ticket events; nothing about anyone else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.events import (
    Reply,
    ReturnApproved,
    ReturnRequested,
    RevisitRecorded,
    TicketAccepted,
    TicketCompleted,
    TicketDispatched,
)
from tests.unit.intake.conftest import Intake, consultation, ticket

PHONE = "13920001234"


async def lookup(intake: Intake, ticket_id: str, phone: str = PHONE, who: str = "citizen_web"):  # noqa: ANN201
    return await intake.call(
        who, "POST", "/tickets/lookup", json={"ticket_id": ticket_id, "phone": phone}
    )


def problem_shape(response: httpx.Response) -> dict[str, Any]:
    """The problem body without what names the request itself."""
    return {k: v for k, v in response.json().items() if k not in ("detail", "instance", "trace_id")}


def dispatched(tid: str, intake: Intake, round_: int = 1) -> TicketDispatched:
    return TicketDispatched(
        ticket_id=tid,
        unit_id="city-water",
        matter_code="WATER-001",
        district="120103",
        type="help",
        urgency="livelihood",
        dispatched_at=intake.clock.now(),
        round=round_,
    )


def completed(tid: str, intake: Intake) -> TicketCompleted:
    now = intake.clock.now()
    return TicketCompleted(
        ticket_id=tid,
        unit_id="city-water",
        completed_at=now,
        type="help",
        reply=Reply(
            policy_basis="《天津市供水用水条例》",
            progress="已抢修完毕",
            result="已恢复供水",
            contacted_at=now - timedelta(minutes=30),
            process="接单后派抢修队更换阀门",
            feedback="诉求人表示认可",
        ),
    )


async def test_a_citizen_sees_the_status_of_their_own_ticket(intake: Intake) -> None:
    tid = (await intake.register(ticket(channel="web"), who="citizen_web"))["ticket_id"]
    r = await lookup(intake, tid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "registered"
    assert body["status_label"] == "已受理"
    assert body["matter_name"] == "停水"
    # nothing about people: no name, phone, address or the handling staff
    assert not {"requester_name", "requester_phone", "address", "content"} & set(body)
    assert (await lookup(intake, tid, phone="+86 139-2000-1234")).status_code == 200


async def test_a_wrong_phone_reads_exactly_like_an_unknown_number(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    wrong = await lookup(intake, tid, phone="13800000000")
    unknown = await lookup(intake, "TJ20260302999999")
    assert wrong.status_code == unknown.status_code == 404
    assert problem_shape(wrong) == problem_shape(unknown)
    assert "13800000000" not in wrong.text
    assert wrong.json()["detail"].replace(tid, "X") == unknown.json()["detail"].replace(
        "TJ20260302999999", "X"
    )


async def test_a_ticket_without_a_phone_cannot_be_looked_up(intake: Intake) -> None:
    tid = (await intake.register(consultation()))["ticket_id"]
    assert (await lookup(intake, tid)).status_code == 404


async def test_status_and_reply_follow_the_ticket_events(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]

    async def status() -> dict[str, Any]:
        r = await lookup(intake, tid)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    intake.advance(minutes=1)
    await intake.publish(dispatched(tid, intake))
    assert (await status())["status"] == "dispatched"
    intake.advance(minutes=1)
    await intake.publish(
        ReturnRequested(
            ticket_id=tid,
            unit_id="city-water",
            reason="不属于本单位",
            basis="职责清单",
            requested_at=intake.clock.now(),
        )
    )
    assert (await status())["status"] == "return_review"
    intake.advance(minutes=1)
    await intake.publish(
        ReturnApproved(
            ticket_id=tid, unit_id="city-water", decided_by="agency", decided_at=intake.clock.now()
        ),
    )
    assert (await status())["status"] == "pending_dispatch"
    intake.advance(minutes=1)
    await intake.publish(dispatched(tid, intake))
    intake.advance(minutes=1)
    await intake.publish(
        TicketAccepted(ticket_id=tid, unit_id="city-water", accepted_at=intake.clock.now())
    )
    assert (await status())["status_label"] == "办理中"
    intake.advance(hours=2)
    await intake.publish(completed(tid, intake))
    body = await status()
    assert body["status"] == "completed"
    assert body["reply"]["result"] == "已恢复供水"
    assert body["reply"]["policy_basis"] == "《天津市供水用水条例》"
    assert body["completed_at"] is not None
    intake.advance(hours=20)
    await intake.publish(
        RevisitRecorded(
            ticket_id=tid, rating="satisfied", resolved=True, recorded_at=intake.clock.now()
        )
    )
    assert (await status())["status"] == "closed"
    # the operators' view follows too
    detail = await intake.call("operator", "GET", f"/tickets/{tid}")
    assert detail.json()["status"] == "closed"
    assert detail.json()["reply"]["result"] == "已恢复供水"


async def test_an_older_fact_does_not_undo_a_newer_one(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    earlier = intake.clock.now() + timedelta(minutes=1)
    intake.advance(minutes=5)
    await intake.publish(
        TicketAccepted(ticket_id=tid, unit_id="city-water", accepted_at=intake.clock.now())
    )
    late = dispatched(tid, intake).envelope(producer="dispatch", occurred_at=earlier)
    await intake.bus.publish([late])
    assert (await lookup(intake, tid)).json()["status"] == "accepted"


async def test_the_answer_on_the_spot_is_what_the_citizen_sees(intake: Intake) -> None:
    body = consultation(
        requester={"phone": PHONE},
        answer={"text": "可在天津人社APP办理", "knowledge_entry_ids": []},
    )
    tid = (await intake.register(body))["ticket_id"]
    r = await lookup(intake, tid)
    assert r.json()["status"] == "answered"
    assert r.json()["answer"] == "可在天津人社APP办理"


async def test_an_operator_may_look_up_too(intake: Intake) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    assert (await lookup(intake, tid, who="operator")).status_code == 200


@pytest.mark.parametrize("who", ["unit_water", "supervisor", "agency"])
async def test_other_roles_cannot_use_the_citizen_lookup(intake: Intake, who: str) -> None:
    tid = (await intake.register(ticket()))["ticket_id"]
    assert (await lookup(intake, tid, who=who)).status_code == 403


async def test_a_malformed_phone_is_refused_naming_the_field(intake: Intake) -> None:
    r = await lookup(intake, "TJ20260302000001", phone="12345")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "phone"
