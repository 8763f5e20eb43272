"""Prometheus metrics for every process (``/metrics``, text format).

- HTTP: ``hotline_http_request_duration_seconds`` (a histogram: its ``_count`` is the rate)
  by method, route template (``/tickets/{ticket_id}``, never the raw path) and status,
  recorded by a plain ASGI middleware (``RequestEdge``, which also gives each request its
  trace id).
- The spine, read when scraped: unsent outbox rows and the age of the oldest (relay lag),
  events each consumer group has yet to handle, each group's state, parked dead letters.
- A service's own gauges (``ServiceSpec.metrics``), e.g. the SLA service's open clocks by
  state and its scanner's lag.

Where ``/metrics`` answers (decided here, documented in README "Operations"):
- a service serves it on its own port only, like ``/healthz`` and ``/readyz``; the same
  path reached through the gateway's proxy (``/api/v1/<service>/metrics``, which arrives
  with the gateway's signed caller headers) does not exist (404): service ports are
  internal and are what Prometheus scrapes;
- the gateway's port is public, so its ``/metrics`` answers only a bearer token equal to
  ``HOTLINE_METRICS_TOKEN``; with no token set it does not exist (404).
"""

from __future__ import annotations

import hmac
import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.samples import Sample as PrometheusSample
from sqlalchemy import case, func, select

from shared import entropy
from shared.db import UNPARSEABLE
from shared.logging import incoming_request_id, trace_id_var

if TYPE_CHECKING:
    from shared.service import ServiceContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# (name, help, labels): gauges a service sets from ``ServiceSpec.metrics``
Sample = tuple[str, str, dict[str, str], float]


class TallyHistogram(Histogram):
    """prometheus_client's histogram, a series's observations counted in plain numbers by
    ``tally`` and handed to the histogram's own values when it is read (scraped): the same
    names, labels and values (buckets, count, sum, created; the sum added up in the same
    order), without the two locks ``Histogram.observe`` takes (the sum's and the bucket's
    value) for every request of every process (``RequestEdge``): 0.70 -> 0.14 µs a sample in
    isolation, ~1.5 µs a request as sampled in bench-e2e's intake. A series is observed by
    ``tally`` only, from the process's event loop."""

    def _metric_init(self) -> None:
        super()._metric_init()
        self._tallies = [0] * len(self._upper_bounds)  # observations by bucket, not cumulative
        self._total = 0.0  # their sum

    def tally(self, amount: float) -> None:
        """``observe(amount)`` of a series (``labels(...)``), for a number (not NaN)."""
        self._tallies[bisect_left(self._upper_bounds, amount)] += 1
        self._total += amount

    def _child_samples(self) -> tuple[PrometheusSample, ...]:
        for bucket, tallied in zip(self._buckets, self._tallies, strict=True):
            bucket.set(tallied)
        self._sum.set(self._total)
        return tuple(super()._child_samples())


class Metrics:
    """One process's (or, embedded, one app's) metrics in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = TallyHistogram(
            "hotline_http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._gauges: dict[str, Gauge] = {}

    def set(self, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = Gauge(name, doc, sorted(labels), registry=self.registry)
            self._gauges[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)

    def clear(self, name: str) -> None:
        """Forget a labelled gauge's series (a state that no longer has any members)."""
        gauge = self._gauges.get(name)
        if gauge is not None:
            gauge.clear()

    def exposition(self, samples: Sequence[Sample] = ()) -> tuple[bytes, str]:
        by_name: dict[str, list[Sample]] = {}
        for sample in samples:
            by_name.setdefault(sample[0], []).append(sample)
        for name, group in by_name.items():
            if group[0][2]:
                self.clear(name)
            for _, doc, labels, value in group:
                self.set(name, doc, labels, value)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_template(scope: Scope, known: dict[Any, str] | None = None) -> str:
    """The matched route's path template; the gateway's proxy route names its service.
    (A plain Starlette route leaves no ``route`` in the scope, only its ``endpoint``: its
    template is looked up once among the app's routes and kept in ``known``.)"""
    route = scope.get("route")
    path = getattr(route, "path", None)
    endpoint = scope.get("endpoint")
    if not isinstance(path, str) and endpoint is not None:
        known = {} if known is None else known
        if endpoint not in known:
            routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
            known[endpoint] = next(
                (r.path for r in routes if getattr(r, "endpoint", None) is endpoint), ""
            )
        path = known[endpoint] or None
    if not isinstance(path, str):
        return "unmatched"
    if "{service}" in path:
        service = str(scope.get("path_params", {}).get("service", "unknown"))
        path = path.replace("{service}", service if service.isidentifier() else "unknown")
    return path


class RequestEdge:
    """Plain ASGI, one layer (no task per request) for what every request of every app gets
    at its edge: its trace id — the client's ``x-request-id`` or a new one — as
    ``request.state.trace_id``, in the logs (shared/logging.py) and back on the response;
    and its sample of ``hotline_http_request_duration_seconds`` by method, route template
    and status. (Two layers before, each with its own ``send`` wrapper.)"""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates: dict[Any, str] = {}
        # the histogram's series, by (method, route, status): prometheus_client's labels()
        # builds and looks up its key under a lock on every call
        self.series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # 32 random hex digits, as uuid4().hex but without building a UUID (~3 µs a request)
        # nor a system call for each (shared/entropy.py)
        trace_id = incoming_request_id(scope["headers"]) or entropy.trace_id()
        scope.setdefault("state", {})["trace_id"] = trace_id
        header = (b"x-request-id", trace_id.encode())
        status = 500

        def send_at_edge(message: Message) -> Awaitable[None]:
            # the server's send to await, handed back: no coroutine of its own (two a request)
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            return send(message)

        token = trace_id_var.set(trace_id)
        try:
            await self.app(scope, receive, send_at_edge)
        finally:
            trace_id_var.reset(token)
            self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        key = (scope["method"], route_template(scope, self.templates), status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = self.metrics.http.labels(key[0], key[1], str(status))
        series.tally(seconds)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode())


NAN = float("nan")


async def _spine_rows(ctx: ServiceContext, consumes: bool) -> tuple[Any, Any, Any, Any]:
    """Unsent outbox rows and the oldest one's time; parked and unparseable dead letters."""
    outbox, dead = ctx.db.outbox, ctx.db.dead_letters
    async with ctx.db.engine.connect() as conn:
        backlog, oldest = (
            await conn.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(
                    outbox.c.published_at.is_(None)
                )
            )
        ).one()
        parked, unparseable = (
            (
                await conn.execute(
                    select(
                        func.count(), func.count(case((dead.c.event_type == UNPARSEABLE, 1)))
                    ).where(dead.c.consumer == ctx.name, dead.c.state == "parked")
                )
            ).one()
            if consumes
            else (0, 0)
        )
    return backlog, oldest, parked, unparseable


async def spine_samples(ctx: ServiceContext, consumes: bool) -> list[Sample]:
    """The outbox, the relay, the consumer group and its dead letters of one service."""
    # wall time, as outbox rows are stamped (a test or drill clock moved by days must not
    # read as days of relay lag, nor a clock set in the past hide a stuck relay)
    now = datetime.now(UTC)
    try:
        backlog, oldest, parked, unparseable = await _spine_rows(ctx, consumes)
    except Exception:  # noqa: BLE001 - the database is down: what the bus knows still shows
        # (a consumer stuck in the outage and its growing lag above all); NaN: not known
        backlog, oldest, parked, unparseable = NAN, None, NAN, NAN
    service = {"service": ctx.name}
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    samples: list[Sample] = [
        ("hotline_outbox_backlog", "outbox rows not yet sent to the bus", service, backlog),
        (
            "hotline_relay_lag_seconds",
            "age of the oldest unsent outbox row (0: none waiting)",
            service,
            (
                NAN
                if math.isnan(backlog)
                else max(0.0, (now - oldest).total_seconds())
                if oldest is not None
                else 0.0
            ),
        ),
    ]
    samples += [
        (f"hotline_relay_{name}", f"{what} the relay sent since the process started", service, n)
        for name, what, n in (
            ("batches", "batches", ctx.relay.batches),
            ("events", "events", ctx.relay.sent),
        )
    ]
    if consumes:
        batches, events = ctx.bus.consumed().get(ctx.name, (0, 0))
        samples += [
            (
                f"hotline_consumer_{name}",
                f"{what} this process's consumer of the group handled since it started",
                {"group": ctx.name},
                float(n),
            )
            for name, what, n in (("batches", "batches", batches), ("events", "events", events))
        ]
        refresh = getattr(ctx.bus, "refresh_lag", None)
        if callable(refresh):  # Kafka: read from the broker, also while a batch is stuck
            await refresh()
        lag = getattr(ctx.bus, "lag", None)
        behind = lag().get(ctx.name) if callable(lag) else None
        if behind is not None:
            samples.append(
                (
                    "hotline_consumer_lag_events",
                    "events on the bus this consumer group has yet to handle",
                    {"group": ctx.name},
                    float(behind),
                )
            )
        state = ctx.bus.consumer_states().get(ctx.name, "stopped")
        samples.append(
            (
                "hotline_consumer_running",
                "1 while this process's consumer of the group runs (or retries an outage)",
                {"group": ctx.name},
                1.0 if state in ("running", "retrying") else 0.0,
            )
        )
        samples.append(
            ("hotline_dead_letters", "events parked as dead letters", service, float(parked or 0))
        )
        samples.append(
            (
                "hotline_dead_letters_unparseable",
                "messages parked because they are not events (counted in hotline_dead_letters)",
                service,
                float(unparseable or 0),
            )
        )
    return samples
