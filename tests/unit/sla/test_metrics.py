"""A service's /metrics (its own port): HTTP by route template, the outbox and relay, the
consumer group and its dead letters, and the service's own gauges (SLA: open clocks by
state, scanner lag). Reached through the gateway (signed caller headers) it is 404."""

from __future__ import annotations

import re

import httpx

from tests.unit.sla.conftest import Harness, dispatched, registered, until


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


async def test_through_the_gateway_a_services_metrics_do_not_exist(harness: Harness) -> None:
    async with harness.running():
        r = await harness.call("GET", "/metrics")  # signed as the gateway signs callers
    assert r.status_code == 404
