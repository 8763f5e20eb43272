"""Entries: create, revise, publish, confirm, withdraw (Art 15, 16, 19, 20), their
versions, and reading them by role."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.knowledge.domain import (
    EntryAction,
    EntryKind,
    EntryStatus,
    check_publishable,
    check_validity,
    may_read,
    owning_unit,
    remind_at,
    renewed_validity,
    require_owner,
    require_transition,
)
from services.knowledge.handlers import screening, search
from services.knowledge.handlers.common import (
    CONTENT_FIELDS,
    LIST_FIELDS,
    PRODUCER,
    entry_public,
    entry_row,
    policy_at,
    record_version,
    save_change,
    screened_fields,
    wake_scanner,
)
from services.knowledge.models import entries, entry_matters, entry_versions
from services.knowledge.schemas import (
    EntriesPublic,
    EntryConfirm,
    EntryCreate,
    EntryPublic,
    EntryUpdate,
    EntryWithdraw,
    VersionPublic,
    VersionsPublic,
    VersionSummary,
)
from services.knowledge.screening import refuse_findings
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.detectors import screen_fields
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import (
    KnowledgePublished,
    KnowledgeRenewed,
    KnowledgeSuperseded,
    KnowledgeUpdated,
    KnowledgeWithdrawn,
)
from shared.service import ServiceContext

_NOT_CLEARABLE = ("title", "body", "kind", "valid_from", "valid_until", *LIST_FIELDS)


async def _check_related(conn: AsyncConnection, entry_ids: list[str], own_id: str) -> None:
    if own_id in entry_ids:
        raise InvalidInput("related_entries", "an entry cannot relate to itself")
    if not entry_ids:
        return
    found = set(
        (
            await conn.execute(select(entries.c.entry_id).where(entries.c.entry_id.in_(entry_ids)))
        ).scalars()
    )
    unknown = [e for e in entry_ids if e not in found]
    if unknown:
        raise InvalidInput("related_entries", f"unknown entries: {', '.join(unknown)}")


async def _set_matters(conn: AsyncConnection, entry_id: str, codes: list[str]) -> None:
    await conn.execute(delete(entry_matters).where(entry_matters.c.entry_id == entry_id))
    if codes:
        await conn.execute(
            insert(entry_matters),
            [{"entry_id": entry_id, "matter_code": c} for c in sorted(set(codes))],
        )


async def _publish(
    ctx: ServiceContext, uow: UnitOfWork, row: dict[str, Any], caller: Caller, now: datetime
) -> dict[str, Any]:
    """The changes that publishing makes; the caller writes them and the version."""
    policy = await policy_at(uow.conn, now)
    changes = {
        "status": EntryStatus.PUBLISHED.value,
        "published_at": now,
        "expired_at": None,
        "remind_at": remind_at(row["valid_until"], policy),
        "reminded_at": None,
    }
    uow.emit(
        KnowledgePublished(
            entry_id=row["entry_id"],
            kind=row["kind"],
            title=row["title"],
            unit_id=row["unit_id"],
            valid_until=row["valid_until"],
        ).outgoing(producer=PRODUCER, occurred_at=now)
    )
    uow.after_commit.append(lambda: wake_scanner(ctx))
    for old_id in row.get("supersedes") or []:
        await _supersede(uow, old_id, row["entry_id"], caller, now)
    return changes


async def _supersede(
    uow: UnitOfWork, old_id: str, new_id: str, caller: Caller, now: datetime
) -> None:
    old = dict((await entry_row(uow.conn, old_id, for_update=True))._mapping)
    if old["status"] not in (EntryStatus.DRAFT, EntryStatus.PUBLISHED):
        return  # already withdrawn, expired or superseded: nothing to replace
    after = {
        "status": EntryStatus.SUPERSEDED.value,
        "superseded_by": new_id,
        "remind_at": None,
        "version": old["version"] + 1,
        "updated_at": now,
        "updated_by": caller.sub,
    }
    await save_change(uow.conn, old_id, old, after, "superseded", note=f"replaced by {new_id}")
    uow.emit(
        KnowledgeSuperseded(
            entry_id=old_id, unit_id=old["unit_id"], superseded_by=new_id, superseded_at=now
        ).outgoing(producer=PRODUCER, occurred_at=now)
    )


async def create_entry(ctx: ServiceContext, caller: Caller, data: EntryCreate) -> EntryPublic:
    caller.require(Role.UNIT, Role.AGENCY, Role.ADMIN)
    unit_id = owning_unit(caller, data.unit_id)
    check_validity(data.kind, data.valid_from, data.valid_until)
    now = ctx.clock.now()
    if data.publish:
        check_publishable(data.valid_until, now)
    content = data.model_dump(mode="python", exclude={"publish", "unit_id"})
    content["kind"] = data.kind.value
    entry_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        **content,
        "entry_id": entry_id,
        "unit_id": unit_id,
        "status": EntryStatus.DRAFT.value,
        "version": 1,
        "created_at": now,
        "created_by": caller.sub,
    }
    async with ctx.db.unit_of_work() as uow:
        policy = await policy_at(uow.conn, now)
        # Art 20: nothing is saved when anything is found.
        rules = await screening.rules_for(uow.conn, policy, unit_id)
        refuse_findings(screen_fields(screened_fields(content), rules))
        await _check_related(uow.conn, data.related_entries, entry_id)
        for old_id in data.supersedes:
            old = await entry_row(uow.conn, old_id)
            if old.unit_id != unit_id:
                raise Forbidden(f"entry {old_id} belongs to another unit")
            require_transition(EntryStatus(old.status), EntryAction.SUPERSEDE)
        if data.publish:
            row.update(await _publish(ctx, uow, row, caller, now))
        await uow.conn.execute(insert(entries).values(row))
        await _set_matters(uow.conn, entry_id, data.matter_codes)
        await record_version(
            uow.conn,
            entry_id=entry_id,
            version=1,
            change="created",
            at=now,
            by=caller.sub,
            before={},
            after=row,
        )
        await search.index_entry(uow.conn, row)
    return entry_public(row, now)


async def update_entry(
    ctx: ServiceContext, caller: Caller, entry_id: str, data: EntryUpdate
) -> EntryPublic:
    now = ctx.clock.now()
    given = data.model_dump(mode="python", exclude_unset=True, exclude={"note"})
    for field in _NOT_CLEARABLE:
        if field in given and given[field] is None:
            raise InvalidInput(field, "may not be cleared")
    if "kind" in given:
        given["kind"] = EntryKind(given["kind"]).value
    async with ctx.db.unit_of_work() as uow:
        old = dict((await entry_row(uow.conn, entry_id, for_update=True))._mapping)
        require_owner(caller, old["unit_id"])
        require_transition(EntryStatus(old["status"]), EntryAction.EDIT)
        changed = {f: v for f, v in given.items() if f in CONTENT_FIELDS and v != old.get(f)}
        if not changed:
            return entry_public(old, now)
        new = {**old, **changed}
        if {"kind", "valid_from", "valid_until"} & changed.keys():
            check_validity(
                EntryKind(new["kind"]), new["valid_from"], new["valid_until"], old["confirmed_at"]
            )
        policy = await policy_at(uow.conn, now)
        rules = await screening.rules_for(uow.conn, policy, old["unit_id"])
        refuse_findings(screen_fields(screened_fields(changed), rules))
        if "related_entries" in changed:
            await _check_related(uow.conn, new["related_entries"], entry_id)
        after: dict[str, Any] = {
            **changed,
            "version": old["version"] + 1,
            "updated_at": now,
            "updated_by": caller.sub,
        }
        if "valid_until" in changed and old["status"] == EntryStatus.PUBLISHED:
            check_publishable(new["valid_until"], now)
            after.update(remind_at=remind_at(new["valid_until"], policy), reminded_at=None)
            uow.after_commit.append(lambda: wake_scanner(ctx))
        await uow.conn.execute(update(entries).where(entries.c.entry_id == entry_id).values(after))
        if "matter_codes" in changed:
            await _set_matters(uow.conn, entry_id, new["matter_codes"])
        await record_version(
            uow.conn,
            entry_id=entry_id,
            version=after["version"],
            change="edited",
            at=now,
            by=caller.sub,
            before=old,
            after=after,
            note=data.note,
        )
        new.update(after)
        await search.index_entry(uow.conn, new)
        uow.emit(
            KnowledgeUpdated(
                entry_id=entry_id,
                unit_id=old["unit_id"],
                version=after["version"],
                status=old["status"],
                changed_fields=sorted(changed),
                valid_until=new["valid_until"],
                updated_at=now,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return entry_public(new, now)


async def publish_entry(ctx: ServiceContext, caller: Caller, entry_id: str) -> EntryPublic:
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        old = dict((await entry_row(uow.conn, entry_id, for_update=True))._mapping)
        require_owner(caller, old["unit_id"])
        require_transition(EntryStatus(old["status"]), EntryAction.PUBLISH)
        check_publishable(old["valid_until"], now)
        after = await _publish(ctx, uow, old, caller, now)
        after.update(version=old["version"] + 1, updated_at=now, updated_by=caller.sub)
        await save_change(uow.conn, entry_id, old, after, "published")
    return entry_public({**old, **after}, now)


async def confirm_entry(
    ctx: ServiceContext, caller: Caller, entry_id: str, data: EntryConfirm
) -> EntryPublic:
    """Art 19: the owner confirms the entry is still right; validity is renewed within the
    kind's cap, counted from now."""
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        old = dict((await entry_row(uow.conn, entry_id, for_update=True))._mapping)
        require_owner(caller, old["unit_id"])
        require_transition(EntryStatus(old["status"]), EntryAction.CONFIRM)
        valid_until = renewed_validity(EntryKind(old["kind"]), now, data.valid_until)
        policy = await policy_at(uow.conn, now)
        after = {
            "valid_until": valid_until,
            "confirmed_at": now,
            "remind_at": remind_at(valid_until, policy),
            "reminded_at": None,
            "version": old["version"] + 1,
            "updated_at": now,
            "updated_by": caller.sub,
        }
        await save_change(uow.conn, entry_id, old, after, "confirmed", note=data.note)
        uow.emit(
            KnowledgeRenewed(
                entry_id=entry_id,
                unit_id=old["unit_id"],
                version=after["version"],
                confirmed_at=now,
                valid_until=valid_until,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
        uow.after_commit.append(lambda: wake_scanner(ctx))
    return entry_public({**old, **after}, now)


async def withdraw_entry(
    ctx: ServiceContext, caller: Caller, entry_id: str, data: EntryWithdraw
) -> EntryPublic:
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        old = dict((await entry_row(uow.conn, entry_id, for_update=True))._mapping)
        require_owner(caller, old["unit_id"])
        require_transition(EntryStatus(old["status"]), EntryAction.WITHDRAW)
        after = {
            "status": EntryStatus.WITHDRAWN.value,
            "withdrawn_at": now,
            "withdrawn_reason": data.reason,
            "remind_at": None,
            "version": old["version"] + 1,
            "updated_at": now,
            "updated_by": caller.sub,
        }
        await save_change(uow.conn, entry_id, old, after, "withdrawn", note=data.reason)
        uow.emit(
            KnowledgeWithdrawn(
                entry_id=entry_id,
                unit_id=old["unit_id"],
                withdrawn_at=now,
                withdrawn_by=caller.sub,
                reason=data.reason,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return entry_public({**old, **after}, now)


# ---- reading ------------------------------------------------------------------------------


async def _readable(ctx: ServiceContext, caller: Caller, entry_id: str) -> EntryPublic:
    async with ctx.db.engine.connect() as conn:
        row = await entry_row(conn, entry_id)
    entry = entry_public(row, ctx.clock.now())
    if not may_read(caller, entry.unit_id, entry.valid):
        raise Forbidden("only valid entries, or your own unit's, may be read")
    return entry


async def get_entry(ctx: ServiceContext, caller: Caller, entry_id: str) -> EntryPublic:
    return await _readable(ctx, caller, entry_id)


async def list_entries(
    ctx: ServiceContext,
    caller: Caller,
    flt: search.SearchFilter,
    *,
    limit: int,
    offset: int,
) -> EntriesPublic:
    where = flt.clauses()
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(entries).where(*where))
        rows = (
            await conn.execute(
                select(entries)
                .where(*where)
                .order_by(entries.c.valid_until, entries.c.entry_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    now = ctx.clock.now()
    return EntriesPublic(data=[entry_public(r, now) for r in rows], count=count or 0)


def _owner_view(caller: Caller, entry: EntryPublic) -> None:
    """Versions show who changed what: for the owner, the agency and the administrator."""
    if not may_read(caller, entry.unit_id, valid=False):
        raise Forbidden("versions are for the owning unit, the agency and the administrator")


async def list_versions(ctx: ServiceContext, caller: Caller, entry_id: str) -> VersionsPublic:
    entry = await _readable(ctx, caller, entry_id)
    _owner_view(caller, entry)
    async with ctx.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(entry_versions)
                .where(entry_versions.c.entry_id == entry_id)
                .order_by(entry_versions.c.version)
            )
        ).all()
    return VersionsPublic(
        data=[VersionSummary.model_validate(dict(r._mapping)) for r in rows], count=len(rows)
    )


async def get_version(
    ctx: ServiceContext, caller: Caller, entry_id: str, version: int
) -> VersionPublic:
    entry = await _readable(ctx, caller, entry_id)
    _owner_view(caller, entry)
    async with ctx.db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(entry_versions).where(
                    entry_versions.c.entry_id == entry_id, entry_versions.c.version == version
                )
            )
        ).first()
    if row is None:
        raise NotFound(f"entry {entry_id} has no version {version}")
    return VersionPublic.model_validate(dict(row._mapping))
