"""Exemptions (Art 24): the unit explains a dissatisfied rating with evidence files kept by
this service; the agency accepts (the rating leaves the unit's satisfaction rate) or
rejects, with a reason."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import (
    EvidenceLimits,
    ExemptionState,
    check_can_decide_exemption,
    check_can_file_exemption,
    check_evidence_count,
    check_evidence_file,
    check_evidence_size,
)
from services.evaluation.handlers.common import (
    PRODUCER,
    new_id,
    of_district,
    require_ticket_district,
    row_dict,
    scoped_unit,
    state,
)
from services.evaluation.models import exemption_files, exemptions, revisits
from services.evaluation.schemas import (
    EvidenceFilePublic,
    ExemptionDecision,
    ExemptionPublic,
    ExemptionsPublic,
)
from shared.auth import Caller, Role
from shared.errors import IllegalTransition, InvalidInput, NotFound
from shared.events import ExemptionDecided, ExemptionFiled
from shared.service import ServiceContext

READERS = (Role.AGENCY, Role.ADMIN, Role.UNIT)
CHUNK = 64 * 1024


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    stored_as: str


@dataclass(frozen=True)
class Download:
    path: Path
    filename: str
    content_type: str


def _display_name(name: str | None) -> str:
    """The client's file name, for display only: never part of a path on disk."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable()).strip()[:255]


def _content_type(upload: UploadFile) -> str:
    return (upload.content_type or "").split(";", 1)[0].strip().lower()


async def _store(
    upload: UploadFile, folder: Path, exemption_id: str, limits: EvidenceLimits
) -> StoredFile:
    """Stream one upload to disk under a generated name, refusing it past the size limit."""
    name, kind = _display_name(upload.filename), _content_type(upload)
    check_evidence_file(name, kind, limits)
    file_id = new_id()
    digest = hashlib.sha256()
    size = 0
    with (folder / file_id).open("wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            check_evidence_size(name, size, limits)
            digest.update(chunk)
            out.write(chunk)
    check_evidence_size(name, size, limits)
    return StoredFile(file_id, name, kind, size, digest.hexdigest(), f"{exemption_id}/{file_id}")


async def _rated_revisit(conn: AsyncConnection, ticket_id: str, round_: int | None) -> Any:
    query = select(revisits).where(revisits.c.ticket_id == ticket_id)
    if round_ is not None:
        query = query.where(revisits.c.round == round_)
    else:  # the rating that counts now: the latest one
        query = query.where(revisits.c.rating.is_not(None))
    row = (await conn.execute(query.order_by(revisits.c.round.desc()).limit(1))).first()
    if row is None:
        raise NotFound(f"ticket {ticket_id} has no rating to explain")
    return row


async def file_exemption(
    ctx: ServiceContext,
    caller: Caller,
    *,
    ticket_id: str,
    round_: int | None,
    explanation: str,
    files: Sequence[UploadFile],
) -> ExemptionPublic:
    caller.require(Role.UNIT)
    if not explanation.strip():
        raise InvalidInput("explanation", "the written explanation is required (Art 24)")
    settings = state(ctx).settings
    limits = settings.evidence_limits
    async with ctx.db.engine.connect() as conn:
        revisit = await _rated_revisit(conn, ticket_id, round_)
        caller.require_unit(revisit.unit_id)
        existing = await conn.scalar(
            select(exemptions.c.state).where(
                exemptions.c.ticket_id == ticket_id, exemptions.c.round == revisit.round
            )
        )
    check_can_file_exemption(
        ticket_id, revisit.rating, ExemptionState(existing) if existing else None
    )
    check_evidence_count(len(files), limits)
    exemption_id = new_id()
    folder = settings.files_dir / exemption_id
    folder.mkdir(parents=True, exist_ok=False)
    now = ctx.clock.now()
    try:
        stored = [await _store(f, folder, exemption_id, limits) for f in files]
        async with ctx.db.unit_of_work() as uow:
            await uow.conn.execute(
                insert(exemptions).values(
                    exemption_id=exemption_id,
                    ticket_id=ticket_id,
                    round=revisit.round,
                    unit_id=revisit.unit_id,
                    explanation=explanation,
                    state=ExemptionState.PENDING.value,
                    filed_by=caller.sub,
                    filed_at=now,
                )
            )
            await uow.conn.execute(
                insert(exemption_files),
                [{"exemption_id": exemption_id, **vars(s)} for s in stored],
            )
            uow.emit(
                ExemptionFiled(
                    exemption_id=exemption_id,
                    ticket_id=ticket_id,
                    round=revisit.round,
                    unit_id=revisit.unit_id,
                    filed_by=caller.sub,
                    filed_at=now,
                    file_count=len(stored),
                ).outgoing(producer=PRODUCER, occurred_at=now)
            )
    except IntegrityError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise IllegalTransition(
            f"an exemption for this rating of ticket {ticket_id} was filed meanwhile",
            rule="Art 24: one explanation per rating",
        ) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return await get_exemption(ctx, caller, exemption_id)


async def decide_exemption(
    ctx: ServiceContext, caller: Caller, exemption_id: str, data: ExemptionDecision
) -> ExemptionPublic:
    caller.require(Role.AGENCY)
    now = ctx.clock.now()
    async with ctx.db.unit_of_work() as uow:
        row = await _row(uow.conn, exemption_id)
        await require_ticket_district(uow.conn, caller, row.ticket_id)
        check_can_decide_exemption(exemption_id, ExemptionState(row.state))
        done = await uow.conn.execute(
            update(exemptions)
            .where(
                exemptions.c.exemption_id == exemption_id,
                exemptions.c.state == ExemptionState.PENDING.value,
            )
            .values(
                state=data.decision,
                decision_reason=data.reason,
                decided_by=caller.sub,
                decided_at=now,
            )
        )
        if done.rowcount != 1:
            raise IllegalTransition(f"exemption {exemption_id} was decided meanwhile")
        uow.emit(
            ExemptionDecided(
                exemption_id=exemption_id,
                ticket_id=row.ticket_id,
                round=row.round,
                unit_id=row.unit_id,
                decision=data.decision,
                reason=data.reason,
                decided_by=caller.sub,
                decided_at=now,
            ).outgoing(producer=PRODUCER, occurred_at=now)
        )
    return await get_exemption(ctx, caller, exemption_id)


# ---- queries --------------------------------------------------------------------------------


async def _row(conn: AsyncConnection, exemption_id: str) -> Any:
    row = (
        await conn.execute(select(exemptions).where(exemptions.c.exemption_id == exemption_id))
    ).first()
    if row is None:
        raise NotFound(f"no exemption {exemption_id}")
    return row


async def _files(conn: AsyncConnection, ids: list[str]) -> dict[str, list[EvidenceFilePublic]]:
    found: dict[str, list[EvidenceFilePublic]] = {i: [] for i in ids}
    if ids:
        rows = (
            await conn.execute(
                select(exemption_files)
                .where(exemption_files.c.exemption_id.in_(ids))
                .order_by(exemption_files.c.filename)
            )
        ).all()
        for r in rows:
            found[r.exemption_id].append(
                EvidenceFilePublic(
                    file_id=r.file_id,
                    filename=r.filename,
                    content_type=r.content_type,
                    size=r.size,
                    sha256=r.sha256,
                )
            )
    return found


async def get_exemption(ctx: ServiceContext, caller: Caller, exemption_id: str) -> ExemptionPublic:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        row = await _row(conn, exemption_id)
        caller.require_unit(row.unit_id)
        files = await _files(conn, [exemption_id])
    return ExemptionPublic(**row_dict(row), files=files[exemption_id])


async def list_exemptions(
    ctx: ServiceContext,
    caller: Caller,
    *,
    state_: ExemptionState | None,
    unit_id: str | None,
    ticket_id: str | None,
    limit: int,
    offset: int,
) -> ExemptionsPublic:
    caller.require(*READERS)
    unit = scoped_unit(caller, unit_id)
    query = select(exemptions)
    if state_ is not None:
        query = query.where(exemptions.c.state == state_.value)
    if unit is not None:
        query = query.where(exemptions.c.unit_id == unit)
    if ticket_id is not None:
        query = query.where(exemptions.c.ticket_id == ticket_id)
    district = of_district(caller, exemptions.c.ticket_id)
    if district is not None:  # Art 3: a district agency reviews its district's
        query = query.where(district)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(exemptions.c.filed_at.desc()).limit(limit).offset(offset)
            )
        ).all()
        files = await _files(conn, [r.exemption_id for r in rows])
    return ExemptionsPublic(
        data=[ExemptionPublic(**row_dict(r), files=files[r.exemption_id]) for r in rows],
        count=count or 0,
    )


async def evidence_file(
    ctx: ServiceContext, caller: Caller, exemption_id: str, file_id: str
) -> Download:
    caller.require(*READERS)
    async with ctx.db.engine.connect() as conn:
        row = await _row(conn, exemption_id)
        caller.require_unit(row.unit_id)
        stored = (
            await conn.execute(
                select(exemption_files).where(
                    exemption_files.c.exemption_id == exemption_id,
                    exemption_files.c.file_id == file_id,
                )
            )
        ).first()
    if stored is None:
        raise NotFound(f"exemption {exemption_id} has no file {file_id}")
    path = state(ctx).settings.files_dir / stored.stored_as
    if not path.is_file():
        raise NotFound(f"the evidence file {stored.filename} is missing from storage")
    return Download(path, stored.filename, stored.content_type)
