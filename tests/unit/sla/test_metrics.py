"""A service's /metrics (its own port): HTTP by route template, the outbox and relay, the
consumer group and its dead letters, and the service's own gauges (SLA: open clocks by
state, scanner lag). Reached through the gateway (signed caller headers) it is 404. Each
gauge moves with what it measures; /readyz says when the consumer is not running."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.sla.handlers import scanner as scanner_module
from tests.unit.sla.conftest import T0, Harness, dispatched, registered, until


def value(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert found, f"{series} not in\n{text}"
    return float(found.group(1))


async def test_a_services_metrics_show_its_spine_and_its_own_gauges(harness: Harness) -> None:
    async with harness.running():
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ1")) == 2, "two clocks set")
        assert (await harness.call("GET", "/tickets/TJ1/clocks")).status_code == 200
        transport = httpx.ASGITransport(app=harness.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sla") as scraper:
            r = await scraper.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert (
        value(
            text,
            'hotline_http_request_duration_seconds_count{method="GET",'
            'route="/tickets/{ticket_id}/clocks",status="200"}',
        )
        == 1
    )
    assert value(text, 'hotline_sla_open_clocks{state="running"}') == 1  # acceptance
    assert value(text, 'hotline_sla_open_clocks{state="overdue"}') == 0
    assert value(text, "hotline_sla_scanner_lag_seconds") == 0
    assert value(text, 'hotline_outbox_backlog{service="sla"}') >= 0
    assert value(text, 'hotline_relay_lag_seconds{service="sla"}') >= 0
    assert value(text, 'hotline_dead_letters{service="sla"}') == 0
    assert value(text, 'hotline_consumer_running{group="sla"}') == 1
    assert value(text, 'hotline_consumer_lag_events{group="sla"}') >= 0
    # the two events, published together, came in one batch and were handled in one
    # transaction; the two clocks it set went out through the relay together
    assert value(text, 'hotline_consumer_events{group="sla"}') == 2
    assert value(text, 'hotline_consumer_batches{group="sla"}') == 1
    assert value(text, 'hotline_relay_events{service="sla"}') == 2
    assert value(text, 'hotline_relay_batches{service="sla"}') == 1


async def test_through_the_gateway_a_services_metrics_do_not_exist(harness: Harness) -> None:
    async with harness.running():
        r = await harness.call("GET", "/metrics")  # signed as the gateway signs callers
    assert r.status_code == 404


async def scrape(harness: Harness) -> str:
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sla") as scraper:
        r = await scraper.get("/metrics")
    assert r.status_code == 200
    return r.text


async def ready(harness: Harness) -> httpx.Response:
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sla") as client:
        return await client.get("/readyz")


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(500):
        if await probe():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_consumer_that_is_not_running_shows_in_readyz_and_its_lag_counts_what_waits(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness.running():
        log = harness.bus.log
        assert value(await scrape(harness), 'hotline_consumer_lag_events{group="sla"}') == 0
        real_read = log._read

        async def dies(sub: Any) -> Any:
            raise RuntimeError("bug in the consumer loop")

        monkeypatch.setattr(log, "_read", dies)
        await log.publish([registered("TJ1"), dispatched("TJ1")])
        await until(lambda: log.consumer_states()["sla"] == "restarting", "the consumer to die")
        text = await scrape(harness)
        assert value(text, 'hotline_consumer_lag_events{group="sla"}') == 2
        assert value(text, 'hotline_consumer_running{group="sla"}') == 0
        down = await ready(harness)
        assert (down.status_code, down.json()["consumer"]) == (503, "restarting")

        monkeypatch.setattr(log, "_read", real_read)  # its supervisor starts it again
        await log.settle(harness.app.state.ctx.relay, timeout=10)
        text = await scrape(harness)
        assert value(text, 'hotline_consumer_lag_events{group="sla"}') == 0
        assert value(text, 'hotline_consumer_running{group="sla"}') == 1
        up = await ready(harness)
        assert (up.status_code, up.json()["consumer"]) == (200, "running")


class DatabaseDown:
    """The service's engine while PostgreSQL cannot be reached."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def connect(self) -> Any:
        raise ConnectionRefusedError("the database is down")

    def begin(self) -> Any:
        raise ConnectionRefusedError("the database is down")


async def test_metrics_answer_through_a_database_outage_with_the_stuck_consumers_lag(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness.running() as ctx:
        log = harness.bus.log
        assert value(await scrape(harness), 'hotline_consumer_lag_events{group="sla"}') == 0
        monkeypatch.setattr(ctx.db, "engine", DatabaseDown(ctx.db.engine))
        await log.publish([registered("TJ1"), dispatched("TJ1")])
        await until(lambda: log.consumer_states()["sla"] == "retrying", "the consumer stuck")
        text = await scrape(harness)  # answers (200), with what the bus knows
        assert value(text, 'hotline_consumer_lag_events{group="sla"}') == 2
        assert value(text, 'hotline_consumer_running{group="sla"}') == 1
        assert math.isnan(value(text, 'hotline_outbox_backlog{service="sla"}'))  # not known
        assert math.isnan(value(text, 'hotline_dead_letters{service="sla"}'))

        monkeypatch.undo()  # the database is back
        await log.settle(ctx.relay, timeout=20)
        text = await scrape(harness)
        assert value(text, 'hotline_consumer_lag_events{group="sla"}') == 0
        assert value(text, 'hotline_outbox_backlog{service="sla"}') == 0
        assert value(text, 'hotline_dead_letters{service="sla"}') == 0


async def test_a_parked_event_raises_the_dead_letter_gauge_and_logs_an_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="hotline.consumer")
    async with harness.running():
        good = registered("TJ1")
        poison = good.model_copy(
            update={"event_id": uuid.uuid4(), "ticket_id": "TJ2", "payload": {}}
        )
        await harness.bus.publish([poison, good])
        text = await scrape(harness)
    assert value(text, 'hotline_dead_letters{service="sla"}') == 1
    [parked] = [r for r in caplog.records if r.name == "hotline.consumer"]
    assert (parked.levelname, parked.getMessage()) == ("ERROR", "event parked as a dead letter")
    assert parked.event == str(poison.event_id)  # type: ignore[attr-defined]


async def test_a_message_that_is_not_an_event_is_parked_shown_and_discarded_by_the_admin(
    harness: Harness,
) -> None:
    """The SLA service as it runs embedded: a message on its topic that is not an event is
    parked (the events after it are handled), raises its gauge, is listed to the admin;
    its retry is a 409 problem while it still cannot be read; discarding it works."""
    from shared.auth import Role
    from shared.bus import RawEvent
    from shared.events import TOPIC_TICKETS

    async with harness.running() as ctx:
        await harness.bus.log.publish_raw([RawEvent(TOPIC_TICKETS, "TJ1", b"\x00garbage{")])
        await harness.bus.publish([registered("TJ1")])
        await until(lambda: len(harness.emitted("sla.deadline_set", "TJ1")) == 1, "TJ1's clock")
        text = await scrape(harness)
        listed = await harness.call("GET", "/dead-letters", role=Role.ADMIN)
        [parked] = listed.json()
        retry = await harness.call("POST", f"/dead-letters/{parked['id']}/retry", role=Role.ADMIN)
        discard = await harness.call(
            "POST", f"/dead-letters/{parked['id']}/discard", role=Role.ADMIN
        )
        after = await harness.call("GET", "/dead-letters", role=Role.ADMIN)
        text_after = await scrape(harness)
        assert ctx.bus.consumer_states()["sla"] == "running"
    assert value(text, 'hotline_dead_letters{service="sla"}') == 1
    assert value(text, 'hotline_dead_letters_unparseable{service="sla"}') == 1
    assert listed.status_code == 200
    assert (parked["event_type"], parked["topic"], parked["state"]) == (
        "unparseable",
        TOPIC_TICKETS,
        "parked",
    )
    assert (parked["payload"]["raw"], parked["payload"]["key"]) == ("\x00garbage{", "TJ1")
    assert retry.status_code == 409
    assert retry.headers["content-type"] == "application/problem+json"
    assert "still not an event" in retry.json()["detail"]
    assert retry.json()["reason"] == "unparseable"
    assert discard.status_code == 200
    assert discard.json()[0]["state"] == "discarded"
    assert after.json() == []
    assert value(text_after, 'hotline_dead_letters_unparseable{service="sla"}') == 0


async def test_unsent_events_show_as_outbox_backlog_and_relay_lag_until_sent(
    harness: Harness,
) -> None:
    class BrokerDown:
        async def publish_raw(self, events: Any) -> None:
            raise ConnectionError("broker unreachable")

    async with harness.running() as ctx:
        log = harness.bus.log
        ctx.relay.bus = BrokerDown()
        await log.publish([registered("TJ1"), dispatched("TJ1")])
        await log.drain(groups=["sla"])  # the clocks are set; their events wait in the outbox
        await asyncio.sleep(0.05)
        text = await scrape(harness)
        assert value(text, 'hotline_outbox_backlog{service="sla"}') == 2
        assert value(text, 'hotline_relay_lag_seconds{service="sla"}') >= 0.05

        ctx.relay.bus = log

        async def sent() -> bool:
            return value(await scrape(harness), 'hotline_outbox_backlog{service="sla"}') == 0

        await eventually(sent, "the relay to send the backlog")
        assert value(await scrape(harness), 'hotline_relay_lag_seconds{service="sla"}') == 0


async def test_open_clocks_by_state_and_scanner_lag_follow_the_scanner(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness.running():
        await harness.bus.publish([registered("TJ1"), dispatched("TJ1")])
        real_act = scanner_module.act_on_due

        async def asleep(ctx: Any) -> int:
            return 0

        monkeypatch.setattr(scanner_module, "act_on_due", asleep)
        harness.clock.set(T0 + timedelta(minutes=1 + 15 + 10))  # acceptance 10 min overdue
        await asyncio.sleep(0.05)
        text = await scrape(harness)
        assert value(text, "hotline_sla_scanner_lag_seconds") >= 10 * 60
        assert value(text, 'hotline_sla_open_clocks{state="running"}') == 1
        assert value(text, 'hotline_sla_open_clocks{state="overdue"}') == 0

        monkeypatch.setattr(scanner_module, "act_on_due", real_act)
        harness.clock.advance(timedelta(seconds=1))  # wakes the scanner

        async def caught_up() -> bool:
            text = await scrape(harness)
            return (
                value(text, "hotline_sla_scanner_lag_seconds") == 0
                and value(text, 'hotline_sla_open_clocks{state="overdue"}') == 1
            )

        await eventually(caught_up, "the scanner to act on the overdue clock")
        assert value(await scrape(harness), 'hotline_sla_open_clocks{state="running"}') == 0
