"""Catalog versions (派单目录, Art 7): each seed, import or admin change is a version with
the date it takes effect; applying one updates the catalog and publishes every unit and
matter in it, the events other services build their read models from."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.dispatch.domain import (
    CatalogEntry,
    CatalogMatter,
    Level,
    Unit,
    expand_catalog,
    validate_catalog,
)
from services.dispatch.handlers.common import PRODUCER, matter_from_row, new_id, unit_from_row
from services.dispatch.models import catalog_versions, matter_units, matters, units
from services.dispatch.schemas import (
    CatalogDocument,
    MatterIn,
    UnitIn,
)
from shared.aio import IdlePoll, act_if_due
from shared.db import UnitOfWork
from shared.errors import IllegalTransition
from shared.events import MatterPublished, UnitPublished
from shared.logging import Outage
from shared.service import ServiceContext

log = logging.getLogger("hotline.dispatch.catalog")
CATALOG_FILE = Path(__file__).resolve().parent.parent / "data" / "catalog.json"
# The scheduler looks by itself for versions another instance stored (this process's own
# wake it): IDLE_POLL_SECONDS after it last applied one, then twice as long after each look
# that found nothing, up to IDLE_POLL_MAX_SECONDS. The instance that stored a version applies
# it at its time too; the longest wait only delays one taking effect within
# IDLE_POLL_MAX_SECONDS of being stored by an instance that stopped before then.
IDLE_POLL_SECONDS = 1.0
IDLE_POLL_MAX_SECONDS = 8.0
UNIQUE_LABEL = "Art 7: each catalog version has its own label"


# ---- documents ------------------------------------------------------------------------


def starter_document() -> CatalogDocument:
    """The shipped demo catalog file, expanded into the import format."""
    data = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    unit_list, entries = expand_catalog(data)
    return CatalogDocument(
        version=data["version"],
        units=[UnitIn.model_validate({**vars(u), "level": u.level.value}) for u in unit_list],
        matters=[matter_in(e) for e in entries],
    )


def matter_in(entry: CatalogEntry) -> MatterIn:
    m = entry.matter
    return MatterIn(
        code=m.code,
        name=m.name,
        keywords=list(m.keywords),
        default_urgency=m.default_urgency,  # type: ignore[arg-type]
        functional_only=m.functional_only,
        statutory_period=m.statutory_period,
        anonymous_allowed=m.anonymous_allowed,
        active=m.active,
        responsible=dict(entry.responsible),
    )


def _unit(u: UnitIn) -> Unit:
    return Unit(
        u.unit_id,
        u.name,
        Level(u.level),
        u.functional,
        u.industry,
        u.district,
        u.parent_id,
        u.active,
    )


def _entry(m: MatterIn) -> CatalogEntry:
    return CatalogEntry(
        CatalogMatter(
            m.code,
            m.name,
            m.default_urgency,
            m.functional_only,
            m.statutory_period,
            m.anonymous_allowed,
            tuple(m.keywords),
            m.active,
        ),
        dict(m.responsible),
    )


async def current_catalog(conn: Any) -> tuple[dict[str, Unit], dict[str, CatalogEntry]]:
    unit_map = {r.unit_id: unit_from_row(r) for r in await conn.execute(select(units))}
    responsible: dict[str, dict[str, str]] = {}
    for r in await conn.execute(select(matter_units)):
        responsible.setdefault(r.matter_code, {})[r.district] = r.unit_id
    entries = {
        r.code: CatalogEntry(matter_from_row(r), responsible.get(r.code, {}))
        for r in await conn.execute(select(matters))
    }
    return unit_map, entries


# ---- versions: record, apply, schedule ------------------------------------------------


async def record_version(
    ctx: ServiceContext,
    uow: UnitOfWork,
    doc: CatalogDocument,
    *,
    kind: str,
    created_by: str,
) -> int:
    """Store a catalog version; apply it now if its date has come, else the scheduler
    applies it then. Validated against the catalog as it will be (Art 7, 8)."""
    now = ctx.clock.now()
    effective_from = doc.effective_from or now
    if await uow.conn.scalar(select(func.count()).where(catalog_versions.c.label == doc.version)):
        raise IllegalTransition(f"catalog version {doc.version} already exists", rule=UNIQUE_LABEL)
    result = await uow.conn.execute(
        insert(catalog_versions).values(
            label=doc.version,
            kind=kind,
            effective_from=effective_from,
            content=doc.model_dump(mode="json", include={"units", "matters"}),
            created_by=created_by,
            created_at=now,
        )
    )
    version_id = new_id(result)
    if effective_from <= now:
        await _apply(ctx, uow, version_id, doc, effective_from, created_by)
    else:  # checked now against today's catalog, and again when it takes effect
        unit_map, entries = await current_catalog(uow.conn)
        unit_map.update({u.unit_id: _unit(u) for u in doc.units})
        entries.update({m.code: _entry(m) for m in doc.matters})
        validate_catalog(unit_map, list(entries.values()))
        uow.after_commit.append(_waker(ctx).set)
    return version_id


async def _apply(
    ctx: ServiceContext,
    uow: UnitOfWork,
    version_id: int,
    doc: CatalogDocument,
    effective_from: datetime,
    by: str,
) -> None:
    conn, now = uow.conn, ctx.clock.now()
    unit_map, entries = await current_catalog(conn)
    unit_map.update({u.unit_id: _unit(u) for u in doc.units})
    entries.update({m.code: _entry(m) for m in doc.matters})
    validate_catalog(unit_map, list(entries.values()))
    existing_units = {r.unit_id for r in await conn.execute(select(units.c.unit_id))}
    new_units = [u for u in doc.units if u.unit_id not in existing_units]
    if new_units:
        await conn.execute(
            insert(units), [{**u.model_dump(), "updated_at": now} for u in new_units]
        )
    for u in doc.units:
        if u.unit_id in existing_units:
            await conn.execute(
                update(units)
                .where(units.c.unit_id == u.unit_id)
                .values(**u.model_dump(exclude={"unit_id"}), updated_at=now)
            )
    versions = {
        r.code: r.version for r in await conn.execute(select(matters.c.code, matters.c.version))
    }
    fields = {"name", "keywords", "default_urgency", "functional_only", "statutory_period",
              "anonymous_allowed", "active"}  # fmt: skip
    stamp = {
        "catalog_version": doc.version,
        "effective_from": effective_from,
        "updated_at": now,
        "updated_by": by,
    }
    new_matters = [m for m in doc.matters if m.code not in versions]
    if new_matters:
        await conn.execute(
            insert(matters),
            [
                {"code": m.code, **m.model_dump(include=fields), **stamp, "version": 1}
                for m in new_matters
            ],  # fmt: skip
        )
    for m in doc.matters:
        if m.code in versions:
            await conn.execute(
                update(matters)
                .where(matters.c.code == m.code)
                .values(**m.model_dump(include=fields), **stamp, version=versions[m.code] + 1)
            )
    codes = [m.code for m in doc.matters]
    if codes:
        await conn.execute(delete(matter_units).where(matter_units.c.matter_code.in_(codes)))
        rows = [
            {"matter_code": m.code, "district": d, "unit_id": u}
            for m in doc.matters
            for d, u in m.responsible.items()
        ]
        if rows:
            await conn.execute(insert(matter_units), rows)
    await conn.execute(
        update(catalog_versions).where(catalog_versions.c.id == version_id).values(applied_at=now)
    )
    uow.emit(*unit_events(doc.units, now), *matter_events(doc.matters, now))
    log.info(
        "catalog version applied",
        extra={"label": doc.version, "units": len(doc.units), "matters": len(doc.matters)},
    )


def unit_events(unit_list: list[UnitIn], now: datetime) -> list[Any]:
    return [
        UnitPublished(
            unit_id=u.unit_id,
            name=u.name,
            level=u.level,
            industry=u.industry,
            district=u.district,
            parent_id=u.parent_id,
            functional=u.functional,
        ).outgoing(producer=PRODUCER, occurred_at=now, ticket_id=u.unit_id)
        for u in unit_list
    ]


def matter_events(matter_list: list[MatterIn], now: datetime) -> list[Any]:
    return [
        MatterPublished(
            code=m.code,
            name=m.name,
            default_urgency=m.default_urgency,
            anonymous_allowed=m.anonymous_allowed,
            active=m.active,
        ).outgoing(producer=PRODUCER, occurred_at=now, ticket_id=m.code)
        for m in matter_list
    ]


def _waker(ctx: ServiceContext) -> asyncio.Event:
    event: asyncio.Event = ctx.extras.setdefault("catalog_wake", asyncio.Event())
    return event


async def apply_due_versions(ctx: ServiceContext) -> int:
    """Apply every stored version whose effective date has come, oldest first."""
    applied = 0
    while True:
        now = ctx.clock.now()
        async with ctx.db.unit_of_work() as uow:
            query = (
                select(catalog_versions)
                .where(
                    catalog_versions.c.applied_at.is_(None),
                    catalog_versions.c.effective_from <= now,
                )
                .order_by(catalog_versions.c.effective_from, catalog_versions.c.id)
                .limit(1)
            )
            if ctx.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            row = (await uow.conn.execute(query)).first()
            if row is None:
                return applied
            doc = CatalogDocument.model_validate({"version": row.label, **row.content})
            await _apply(ctx, uow, row.id, doc, row.effective_from, row.created_by)
        applied += 1


_NEXT_VERSION = select(func.min(catalog_versions.c.effective_from)).where(
    catalog_versions.c.applied_at.is_(None)
)


async def next_version_at(ctx: ServiceContext) -> datetime | None:
    """When the next stored version not applied yet takes effect."""
    upcoming: datetime | None = await ctx.db.scalar(_NEXT_VERSION)
    return upcoming


async def catalog_scheduler(ctx: ServiceContext) -> None:
    """Sleeps until the next version's effective date (or a new version, or a moved test
    clock), then applies it."""
    wake = _waker(ctx)
    outage = Outage(log, "applying catalog versions")
    poll = IdlePoll(IDLE_POLL_SECONDS, IDLE_POLL_MAX_SECONDS)
    while True:
        try:
            acted, upcoming = await act_if_due(
                ctx.clock.now, lambda: next_version_at(ctx), lambda: apply_due_versions(ctx)
            )
            outage.ok()
            if acted:
                poll.found()
                continue
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged when it starts and when it ends
            await asyncio.sleep(outage.failed())
            continue
        wake.clear()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(wake.wait())]
        if upcoming is not None:
            waits.append(asyncio.ensure_future(ctx.clock.sleep_until(upcoming)))
        try:
            await asyncio.wait(waits, timeout=poll.wait(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()


async def seed_catalog(ctx: ServiceContext) -> None:
    """Load the shipped catalog once per file version (a newer file merges over the old)."""
    if not ctx.settings.seed_demo:
        return
    doc = starter_document()
    async with ctx.db.engine.connect() as conn:
        if await conn.scalar(select(func.count()).where(catalog_versions.c.label == doc.version)):
            return
    try:
        async with ctx.db.unit_of_work() as uow:
            await record_version(ctx, uow, doc, kind="seed", created_by="seed")
    except (IntegrityError, IllegalTransition):
        log.info("starter catalog already loaded by another instance")
        return
    log.info("starter catalog loaded", extra={"units": len(doc.units), "matters": len(doc.matters)})
