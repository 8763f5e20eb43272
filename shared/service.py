"""The composition root every service shares: settings, database + migrations, bus,
outbox relay, consumers, clock, error shape, trace ids, health — wired in one lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select, text, union_all

from shared.access import (
    EVERY_ROLE,
    Objects,
    access,
    documents_access,
    guard,
    internal,
    public,
)
from shared.asgi import header
from shared.auth import (
    CALLER_HEADER,
    CALLER_SCOPE_KEY,
    NONCE_HEADER,
    Caller,
    Role,
    VerifyCaller,
    verify_headers,
)
from shared.batching import GroupCommit
from shared.bus import Bus, LiveTypes, Types, Wanted, make_bus
from shared.clock import Clock, OffsetClock, make_clock
from shared.consumer import Consumer
from shared.consumer import EventHandler as EventHandler
from shared.consumer import ManyHandler as ManyHandler
from shared.consumer import NoEffect as NoEffect
from shared.db import Database
from shared.direct import DirectRoutes, ServiceApp
from shared.errors import IllegalTransition, NotFound, install_error_handlers
from shared.events import Event
from shared.http_server import NO_FASTAPI_TELEMETRY, freeze_startup_heap, serve
from shared.metrics import Metrics, RequestEdge, Sample, spine_samples
from shared.params import RowId
from shared.relay import OutboxRelay
from shared.replays import NONCE_LENGTH, SAFE_METHODS, SharedNonces, records_its_nonce
from shared.settings import Settings

log = logging.getLogger("hotline.service")


@dataclass
class ServiceContext:
    """Everything a service's handlers need; one per running service."""

    name: str
    settings: Settings
    db: Database
    bus: Bus
    clock: Clock
    relay: OutboxRelay
    extras: dict[str, Any] = field(default_factory=dict)
    # nonces of state-changing requests shared by the service's instances (shared/replays.py)
    nonces: SharedNonces | None = None
    # group commits of this service (shared/batching.py), drained before it stops
    batches: list[GroupCommit[Any, Any]] = field(default_factory=list)

    async def ready_detail(self) -> dict[str, Any]:
        async with self.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"database": "ok"}


Hook = Callable[[ServiceContext], Coroutine[Any, Any, None]]


@dataclass
class ServiceSpec:
    """What makes a service itself; ``create_service_app`` does the rest."""

    name: str
    title: str
    migrations: Path
    routers: Sequence[APIRouter]
    # event type → handler, run exactly once per event (inbox) in one transaction
    handlers: Mapping[str, EventHandler] = field(default_factory=dict)
    # event type → the same effects for many events at once (set-based; shared/consumer.py)
    many_handlers: Mapping[str, ManyHandler] = field(default_factory=dict)
    # whether the bus reads the events of ``many_handlers``' types straight into their
    # models (``Received``: a quarter less CPU than an ``Envelope`` whose payload is parsed
    # after), for handlers that read the models (``parse_payloads``); not for those that
    # read the envelopes' JSON values (their ``Envelope`` is cheaper)
    many_read: bool = True
    # a type the bus reads as another model than its own (a ``View``: the fields the
    # handlers read), by type
    read_as: Mapping[str, type[Event]] = field(default_factory=dict)
    # the events of a batch that would change nothing (neither run nor recorded)
    of_no_effect: NoEffect | None = None
    # the types of ``handlers`` the consumer takes at the moment (and, of a type, the
    # messages it can tell are of no interest by their bytes), asked before each batch is
    # decoded (shared/bus.py, LiveTypes, Wanted): the bus passes the others over unparsed.
    # None: every type of ``handlers``
    wanted_types: Callable[[ServiceContext], Awaitable[Wanted | Collection[str]]] | None = None
    on_start: Sequence[Hook] = ()
    background: Sequence[Hook] = ()  # long-running loops, cancelled at stop
    ready_checks: Sequence[Callable[[ServiceContext], Awaitable[dict[str, Any]]]] = ()
    # the service's own gauges for /metrics (shared/metrics.py), read when scraped
    metrics: Sequence[Callable[[ServiceContext], Awaitable[list[Sample]]]] = ()


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def get_caller(request: Request) -> Caller:
    """The caller the gateway signed for this request (``VerifyCaller`` checked it, or,
    in an app without that middleware, it is checked here)."""
    verified = request.scope.get(CALLER_SCOPE_KEY)
    if verified is None:
        # scope["path"] is the decoded path, exactly what the gateway signed
        verified = verify_headers(
            get_ctx(request).settings.service_secret,
            request.headers.items(),
            request.method,
            request.scope["path"],
            query=request.scope.get("query_string", b""),
            body=await request.body(),
        )
        request.scope[CALLER_SCOPE_KEY] = verified
    if isinstance(verified, Exception):
        raise verified
    caller: Caller = verified
    scope = request.scope
    if (
        scope["method"] in SAFE_METHODS
        or scope.get(NONCE_RECORDED)
        or records_its_nonce(scope.get("route"))
    ):
        return caller
    # a service's context holds them once started (tests may stand in a bare one)
    nonces: SharedNonces | None = getattr(getattr(request.app.state, "ctx", None), "nonces", None)
    if nonces is not None:
        scope[NONCE_RECORDED] = True
        await nonces.record(header(scope["headers"], _NONCE) or "")
    return caller


NONCE_RECORDED = "hotline.nonce_recorded"


async def nonce_to_write(request: Request, ctx: ServiceContext | None = None) -> str | None:
    """The nonce a route marked ``records_nonce_in_its_write`` records in its own write;
    None when there is none to record (the service's nonces are not shared, or a read).
    ``ctx``: the service's, when the caller has it (else read from the app)."""
    scope = request.scope
    if ctx is None:
        ctx = getattr(request.app.state, "ctx", None)
    if (
        scope["method"] in SAFE_METHODS
        or not records_its_nonce(scope.get("route"))
        or getattr(ctx, "nonces", None) is None
    ):
        return None
    return (header(scope["headers"], _NONCE) or "")[:NONCE_LENGTH]


_NONCE = NONCE_HEADER.encode()


async def _ctx_dependency(request: Request) -> ServiceContext:
    """``get_ctx`` as a dependency: a coroutine, so FastAPI runs it on the loop instead of
    handing a plain function to its thread pool on every request."""
    return get_ctx(request)


CtxDep = Annotated[ServiceContext, Depends(_ctx_dependency)]
CallerDep = Annotated[Caller, Depends(get_caller)]


class ClockChange(BaseModel):
    now: datetime | None = None
    advance_seconds: float | None = None


class ClockState(BaseModel):
    now: datetime
    controllable: bool


def read_clock_state(clock: Clock) -> ClockState:
    return ClockState(now=clock.now(), controllable=isinstance(clock, OffsetClock))


def move_clock_state(clock: Clock, caller: Caller, change: ClockChange) -> ClockState:
    """Test and drill environments only (``HOTLINE_CLOCK=controllable``)."""
    caller.require(Role.ADMIN)
    if not isinstance(clock, OffsetClock):
        raise IllegalTransition("the clock is not controllable (HOTLINE_CLOCK=system)")
    if change.now is not None:
        clock.set(change.now)
    if change.advance_seconds:
        clock.advance(timedelta(seconds=change.advance_seconds))
    return ClockState(now=clock.now(), controllable=True)


def _internal_router(*, clock_routes: bool = True) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["internal"])

    if clock_routes:  # embedded mode has one clock and one endpoint: the gateway's

        @router.get("/clock", response_model=ClockState)
        @access(*EVERY_ROLE)
        async def read_clock(ctx: CtxDep, caller: CallerDep) -> ClockState:
            return read_clock_state(ctx.clock)

        @router.put("/clock", response_model=ClockState)
        @access(Role.ADMIN, objects=(Objects.ADMIN,))
        async def move_clock(change: ClockChange, ctx: CtxDep, caller: CallerDep) -> ClockState:
            """Test and drill environments only (``HOTLINE_CLOCK=controllable``)."""
            return move_clock_state(ctx.clock, caller, change)

    @router.get("/tickets/{ticket_id}/events", response_model=list[dict[str, Any]])
    @internal()
    async def ticket_events(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> list[dict[str, Any]]:
        """Every event this service emitted about the ticket, oldest first: its part of the
        ticket's timeline (the gateway merges all services')."""
        caller.require_internal()  # the gateway's timeline scopes and filters them
        outbox, history = ctx.db.outbox, ctx.db.event_history
        # the history (sent rows past their retention, moved there) and what the outbox
        # still holds, sent and unsent, each through its own index (the key's holds the sent
        # rows only: shared.migrations.index_sent_outbox_rows_by_key); outbox ids order
        # them all, since rows move in id order
        sent = outbox.c.published_at.is_not(None)
        both = union_all(
            select(history.c.outbox_id.label("id"), history.c.payload).where(
                history.c.key == ticket_id
            ),
            select(outbox.c.id, outbox.c.payload).where(outbox.c.key == ticket_id, sent),
            select(outbox.c.id, outbox.c.payload).where(outbox.c.key == ticket_id, ~sent),
        ).subquery()
        async with ctx.db.engine.connect() as conn:
            rows = (await conn.execute(select(both.c.id, both.c.payload).order_by(both.c.id))).all()
        return [orjson.loads(r.payload) for r in rows]

    return router


class DeadLetter(BaseModel):
    """A parked event: ``payload`` is the envelope as it was received. A message that was
    not an event at all has ``event_type`` ``unparseable`` and ``payload`` ``{raw,
    raw_encoding ("utf-8" or "base64"), bytes, partition, offset, key}``: its bytes and
    where it was on the bus; ``error`` says why it could not be read."""

    id: int
    consumer: str
    event_id: str
    event_type: str
    topic: str
    key: str
    payload: dict[str, Any]
    error: str
    attempts: int
    behind: int | None
    state: str
    first_failed_at: datetime
    last_failed_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DeadLetter:
        return cls.model_validate({**row, "payload": orjson.loads(row["payload"])})


def _consumer(ctx: ServiceContext) -> Consumer:
    consumer = ctx.extras.get("consumer")
    if not isinstance(consumer, Consumer):
        raise NotFound("this service consumes no events")
    return consumer


def _dead_letter_router() -> APIRouter:
    """Events this service's consumer parked (see ``shared/consumer.py``). Admin only."""
    router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

    @router.get("", response_model=list[DeadLetter])
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def list_dead_letters(
        ctx: CtxDep,
        caller: CallerDep,
        state: Literal["parked", "retried", "discarded"] | None = "parked",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeadLetter]:
        caller.require(Role.ADMIN)
        return [DeadLetter.of(r) for r in await _consumer(ctx).parked(state, limit)]

    @router.get("/{dead_id}", response_model=DeadLetter)
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def read_dead_letter(dead_id: RowId, ctx: CtxDep, caller: CallerDep) -> DeadLetter:
        caller.require(Role.ADMIN)
        return DeadLetter.of(await _consumer(ctx).get(dead_id))

    @router.post("/{dead_id}/retry", response_model=list[DeadLetter])
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def retry_dead_letter(dead_id: RowId, ctx: CtxDep, caller: CallerDep) -> list[DeadLetter]:
        """Run the event again, then the events of the same ticket parked behind it, in
        order; stops at the first that fails again (it stays parked, with the new error).
        A message parked unread that can be read now joins its ticket's parked events in
        the order it was parked: behind their head it waits (answered still parked)."""
        caller.require(Role.ADMIN)
        return [DeadLetter.of(r) for r in await _consumer(ctx).retry(dead_id, caller.sub)]

    @router.post("/{dead_id}/discard", response_model=list[DeadLetter])
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def discard_dead_letter(
        dead_id: RowId, ctx: CtxDep, caller: CallerDep
    ) -> list[DeadLetter]:
        """Give up on the event; the events parked behind it then run, in order."""
        caller.require(Role.ADMIN)
        return [DeadLetter.of(r) for r in await _consumer(ctx).discard(dead_id, caller.sub)]

    return router


def read_models(spec: ServiceSpec) -> dict[str, type[Event]] | None:
    """The types the bus reads straight into their models for ``spec``'s consumer (its
    set-based handlers', unless ``many_read`` is False), by type."""
    from shared.events import EVENT_TYPES

    if not spec.many_read:
        return None
    return {t: spec.read_as.get(t) or EVENT_TYPES[t] for t in spec.many_handlers}


def _subscribe(ctx: ServiceContext, spec: ServiceSpec) -> None:
    from shared.events import topic_for

    if not spec.handlers:
        return
    topics = sorted({topic_for(t) for t in spec.handlers})
    consumer = Consumer(
        ctx,
        spec.handlers,
        many=spec.many_handlers,
        of_no_effect=spec.of_no_effect,
        max_attempts=ctx.settings.consumer_max_attempts,
    )
    ctx.extras["consumer"] = consumer
    types: Types = set(spec.handlers)
    if spec.wanted_types is not None:
        wanted = spec.wanted_types
        types = LiveTypes(spec.handlers, lambda: wanted(ctx))
    ctx.bus.subscribe(
        spec.name,
        topics,
        consumer.handle_batch,
        types,
        unparseable=consumer.park_unparseable,
        models=read_models(spec),
    )


def create_service_app(
    spec: ServiceSpec,
    settings: Settings,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    clock_routes: bool = True,
    freeze_heap: bool = False,
) -> FastAPI:
    """A service's FastAPI app. Pass ``bus``/``clock`` to share them (embedded mode);
    otherwise the service makes and owns its own from settings. ``clock_routes=False``
    leaves out ``/internal/clock`` (embedded mode serves one clock endpoint instead).
    ``freeze_heap``: the process serves this app alone, so what its start made is frozen
    (``freeze_startup_heap``) once it has started."""
    owns_bus = bus is None
    the_bus: Bus = bus or make_bus(
        settings.bus_url,
        prefix=settings.topic_prefix,
        partitions=settings.kafka_partitions,
        batch_size=settings.consumer_batch_size,
        fetch_wait_ms=settings.kafka_fetch_wait_ms,
        fetch_min_bytes=settings.kafka_fetch_min_bytes,
        commit_seconds=settings.kafka_commit_seconds,
        timing=settings.kafka_group_timing,
    )
    the_clock: Clock = clock or make_clock(settings.clock, settings.clock_offset_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            spec.name,
            settings.db_url,
            pool_size=settings.db_pool_size,
            random_page_cost=settings.db_random_page_cost,
        )
        await db.migrate(spec.migrations)
        relay = OutboxRelay(
            db,
            the_bus,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
            gather_seconds=settings.relay_gather_ms / 1000,
            pace_seconds=settings.relay_pace_ms / 1000,
            retention_seconds=settings.outbox_retention_seconds,
            prune_every_seconds=settings.outbox_prune_seconds,
            inbox_retention_seconds=settings.inbox_retention_seconds,
        )
        ctx = ServiceContext(spec.name, settings, db, the_bus, the_clock, relay)
        shared_nonces = settings.shared_nonces
        if shared_nonces if shared_nonces is not None else db.is_postgres:
            ctx.nonces = SharedNonces(db)
            ctx.batches.append(ctx.nonces.batches)
            await ctx.nonces.create()
        app.state.ctx = ctx
        _subscribe(ctx, spec)
        for hook in spec.on_start:
            await hook(ctx)
        if owns_bus:
            await the_bus.start()
        relay.start()
        tasks = [
            asyncio.create_task(job(ctx), name=f"{spec.name}:{job.__name__}")
            for job in spec.background
        ]
        if ctx.nonces is not None:
            tasks.append(asyncio.create_task(ctx.nonces.prune_forever(), name="nonces"))
        if freeze_heap:
            freeze_startup_heap()
        log.info("service started", extra={"service": spec.name})
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            for batches in ctx.batches:  # requests still waiting for a write get it
                await batches.drain()
            await relay.stop()
            if owns_bus:
                await the_bus.stop()
            elif spec.handlers:
                await the_bus.unsubscribe(spec.name)
            await db.dispose()

    app = ServiceApp(
        title=spec.title,
        version="1.0.0",
        lifespan=lifespan,
        telemetry=NO_FASTAPI_TELEMETRY,
        # every route's declared access (shared/access.py), before it reads anything
        dependencies=[Depends(guard(get_caller))],
    )
    install_error_handlers(app)
    # innermost: the busiest routes (``@direct``) answered past FastAPI's router
    app.add_middleware(DirectRoutes, fastapi=app)
    app.add_middleware(VerifyCaller, secret=settings.service_secret)
    metrics = app.state.metrics = Metrics()
    app.add_middleware(RequestEdge, metrics=metrics)  # trace id and metrics, outside

    @app.get("/metrics", include_in_schema=False)
    @public()  # this process's own port only (refused below when reached through the gateway)
    async def prometheus(request: Request) -> Response:
        """Prometheus text format, on this process's own port only: reached through the
        gateway (signed caller headers) it does not exist (shared/metrics.py)."""
        if CALLER_HEADER in request.headers:
            raise NotFound("no such resource")
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        samples: list[Sample] = []
        if ctx is not None:
            samples = await spine_samples(ctx, consumes=bool(spec.handlers))
            for collect in spec.metrics:
                try:
                    samples.extend(await collect(ctx))
                except Exception:  # noqa: BLE001 - its database is down: the rest still shows
                    log.debug("service metrics not read", exc_info=True)
        body, content_type = metrics.exposition(samples)
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["health"])
    @public()
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": spec.name}

    @app.get("/readyz", tags=["health"])
    @public()
    async def readyz(request: Request) -> JSONResponse:
        ctx = getattr(request.app.state, "ctx", None)
        if ctx is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        detail: dict[str, Any] = {}
        status = 200
        if spec.handlers:
            state = ctx.bus.consumer_states().get(spec.name, "stopped")
            detail["consumer"] = state
            if state not in ("running", "retrying"):
                status = 503
        try:
            detail.update(await ctx.ready_detail())
            for check in spec.ready_checks:
                detail.update(await check(ctx))
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            detail["error"] = repr(exc)
            status = 503
        ok = status == 200 and detail.get("ready", True)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "service": spec.name, **detail},
            status_code=200 if ok else 503,
        )

    for router in spec.routers:
        app.include_router(router)
    app.include_router(_internal_router(clock_routes=clock_routes))
    if spec.handlers:
        app.include_router(_dead_letter_router())
    documents_access(app)  # each operation names the roles the guard lets through
    return app


def run_service(spec: ServiceSpec) -> None:
    """``python -m services.<name>``: one service in its own process."""
    from shared.logging import configure_logging
    from shared.settings import get_settings

    settings = get_settings()
    configure_logging(spec.name, settings.log_level, settings.log_json)
    app = create_service_app(spec, settings, freeze_heap=True)
    serve(
        app,
        host=settings.host,
        port=settings.port_for(spec.name),
        unix_socket=settings.service_uds(spec.name) or None,  # the gateway's way in, if set
        # only the gateway calls a service, and a service reads no client address: no
        # layer rewriting it from X-Forwarded-For on every request
        proxy_headers=False,
    )
