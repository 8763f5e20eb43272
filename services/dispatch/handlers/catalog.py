"""Catalog administration (派单目录, Art 7): units and matters, import and export, and
the queries over them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from services.dispatch.domain import (
    unit_in_use,
)
from services.dispatch.handlers.catalog_versions import (
    UNIQUE_LABEL,
    current_catalog,
    matter_events,
    matter_in,
    record_version,
    unit_events,
)
from services.dispatch.models import catalog_versions, matter_units, matters, units
from services.dispatch.schemas import (
    CatalogDocument,
    CatalogVersionPublic,
    CatalogVersionsPublic,
    MatterIn,
    MatterPublic,
    MatterUpdate,
    UnitIn,
    UnitPublic,
    UnitUpdate,
)
from shared.auth import Caller, Role
from shared.errors import IllegalTransition, NotFound
from shared.service import ServiceContext

CATALOG_READERS = tuple(Role)  # the catalog is public information

# ---- admin commands -------------------------------------------------------------------


def _label(kind: str, key: str, now: datetime) -> str:
    return f"{kind}:{key[:32]}@{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


async def import_catalog(
    ctx: ServiceContext, caller: Caller, doc: CatalogDocument
) -> CatalogVersionPublic:
    caller.require(Role.ADMIN)
    try:
        async with ctx.db.unit_of_work() as uow:
            version_id = await record_version(ctx, uow, doc, kind="import", created_by=caller.sub)
    except IntegrityError as exc:  # the same label stored meanwhile by another request
        raise IllegalTransition(
            f"catalog version {doc.version} already exists", rule=UNIQUE_LABEL
        ) from exc
    return await _version(ctx, version_id)


async def export_catalog(ctx: ServiceContext, caller: Caller) -> CatalogDocument:
    caller.require(Role.ADMIN, Role.AGENCY)  # Art 28: no bulk export without these roles
    async with ctx.db.engine.connect() as conn:
        unit_map, entries = await current_catalog(conn)
        label = await conn.scalar(
            select(catalog_versions.c.label)
            .where(catalog_versions.c.applied_at.is_not(None))
            .order_by(catalog_versions.c.applied_at.desc(), catalog_versions.c.id.desc())
            .limit(1)
        )
    return CatalogDocument(
        version=label or "empty",
        units=[
            UnitIn.model_validate({**vars(u), "level": u.level.value})
            for u in sorted(unit_map.values(), key=lambda u: u.unit_id)
        ],
        matters=[matter_in(e) for _, e in sorted(entries.items())],
    )


async def create_matter(ctx: ServiceContext, caller: Caller, body: MatterIn) -> MatterPublic:
    caller.require(Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        if await uow.conn.scalar(select(func.count()).where(matters.c.code == body.code)):
            raise IllegalTransition(
                f"matter {body.code} already exists", rule="Art 7: matter codes are unique"
            )
        doc = CatalogDocument(version=_label("new", body.code, now), matters=[body])
        await record_version(ctx, uow, doc, kind="edit", created_by=caller.sub)
    return await get_matter(ctx, caller, body.code)


async def update_matter(
    ctx: ServiceContext, caller: Caller, code: str, body: MatterUpdate
) -> MatterPublic:
    """A change takes effect now or at ``effective_from`` (a new catalog version)."""
    caller.require(Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        if not await uow.conn.scalar(select(func.count()).where(matters.c.code == code)):
            raise NotFound(f"no matter {code} in the catalog")
        matter = MatterIn.model_validate(
            {**body.model_dump(exclude={"effective_from"}), "code": code}
        )
        doc = CatalogDocument(
            version=_label("edit", code, now), effective_from=body.effective_from, matters=[matter]
        )
        await record_version(ctx, uow, doc, kind="edit", created_by=caller.sub)
    return await get_matter(ctx, caller, code)


async def retire_matter(ctx: ServiceContext, caller: Caller, code: str) -> MatterPublic:
    caller.require(Role.ADMIN)
    current = await get_matter(ctx, caller, code)
    body = MatterUpdate.model_validate(
        {
            **current.model_dump(include=set(MatterUpdate.model_fields) - {"effective_from"}),
            "active": False,
        }  # fmt: skip
    )
    return await update_matter(ctx, caller, code, body)


async def save_unit(
    ctx: ServiceContext, caller: Caller, body: UnitIn, *, create: bool
) -> UnitPublic:
    caller.require(Role.ADMIN)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        exists = await uow.conn.scalar(select(func.count()).where(units.c.unit_id == body.unit_id))
        if create and exists:
            raise IllegalTransition(
                f"unit {body.unit_id} already exists", rule="Art 7: unit ids are unique"
            )
        if not create and not exists:
            raise NotFound(f"no unit {body.unit_id}")
        if not body.active:
            _, entries = await current_catalog(uow.conn)
            code = unit_in_use(body.unit_id, list(entries.values()))
            if code is not None:
                raise IllegalTransition(
                    f"the catalog names {body.unit_id} as responsible for {code}",
                    rule="Art 7: a unit the catalog names cannot be retired",
                )
        doc = CatalogDocument(version=_label("unit", body.unit_id, now), units=[body])
        await record_version(ctx, uow, doc, kind="unit", created_by=caller.sub)
    return await get_unit(ctx, caller, body.unit_id)


async def update_unit(
    ctx: ServiceContext, caller: Caller, unit_id: str, body: UnitUpdate
) -> UnitPublic:
    return await save_unit(
        ctx, caller, UnitIn.model_validate({**body.model_dump(), "unit_id": unit_id}), create=False
    )


async def retire_unit(ctx: ServiceContext, caller: Caller, unit_id: str) -> UnitPublic:
    current = await get_unit(ctx, caller, unit_id)
    body = UnitIn.model_validate({**current.model_dump(), "active": False})
    return await save_unit(ctx, caller, body, create=False)


async def republish(ctx: ServiceContext, caller: Caller) -> dict[str, int]:
    """Emit every unit and matter again, for a consumer rebuilding its read model."""
    caller.require(Role.ADMIN)
    doc = await export_catalog(ctx, caller)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        uow.emit(*unit_events(doc.units, now), *matter_events(doc.matters, now))
    return {"units": len(doc.units), "matters": len(doc.matters)}


# ---- queries --------------------------------------------------------------------------


async def list_units(
    ctx: ServiceContext,
    caller: Caller,
    *,
    district: str | None,
    level: str | None,
    industry: str | None,
    include_inactive: bool,
) -> list[UnitPublic]:
    caller.require(*CATALOG_READERS)
    query = select(units).order_by(units.c.unit_id)
    if district:
        query = query.where(units.c.district == district)
    if level:
        query = query.where(units.c.level == level)
    if industry:
        query = query.where(units.c.industry == industry)
    if not include_inactive:
        query = query.where(units.c.active)
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [UnitPublic.model_validate(dict(r._mapping)) for r in rows]


async def get_unit(ctx: ServiceContext, caller: Caller, unit_id: str) -> UnitPublic:
    caller.require(*CATALOG_READERS)
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(select(units).where(units.c.unit_id == unit_id))).first()
    if row is None:
        raise NotFound(f"no unit {unit_id}")
    return UnitPublic.model_validate(dict(row._mapping))


async def list_matters(
    ctx: ServiceContext, caller: Caller, *, include_inactive: bool = False
) -> list[MatterPublic]:
    caller.require(*CATALOG_READERS)
    query = select(matters).order_by(matters.c.code)
    if not include_inactive:
        query = query.where(matters.c.active)
    async with ctx.db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [MatterPublic.model_validate(dict(r._mapping)) for r in rows]


async def get_matter(ctx: ServiceContext, caller: Caller, code: str) -> MatterPublic:
    caller.require(*CATALOG_READERS)
    async with ctx.db.engine.connect() as conn:
        row = (await conn.execute(select(matters).where(matters.c.code == code))).first()
        if row is None:
            raise NotFound(f"no matter {code} in the catalog")
        responsible = {
            r.district: r.unit_id
            for r in await conn.execute(
                select(matter_units).where(matter_units.c.matter_code == code)
            )
        }
    return MatterPublic.model_validate({**row._mapping, "responsible": responsible})


async def _version(ctx: ServiceContext, version_id: int) -> CatalogVersionPublic:
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(select(catalog_versions).where(catalog_versions.c.id == version_id))
        ).one()
    return _version_public(row)


def _version_public(row: Any) -> CatalogVersionPublic:
    return CatalogVersionPublic(
        id=row.id,
        label=row.label,
        kind=row.kind,
        effective_from=row.effective_from,
        created_by=row.created_by,
        created_at=row.created_at,
        applied_at=row.applied_at,
        units=len(row.content.get("units", [])),
        matters=len(row.content.get("matters", [])),
    )


async def list_versions(
    ctx: ServiceContext, caller: Caller, *, pending: bool | None, limit: int, offset: int
) -> CatalogVersionsPublic:
    caller.require(Role.ADMIN, Role.AGENCY)
    query = select(catalog_versions)
    if pending is True:
        query = query.where(catalog_versions.c.applied_at.is_(None))
    elif pending is False:
        query = query.where(catalog_versions.c.applied_at.is_not(None))
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(catalog_versions.c.id.desc()).limit(limit).offset(offset)
            )
        ).all()
    return CatalogVersionsPublic(data=[_version_public(r) for r in rows], count=count or 0)
