"""What the knowledge handlers share: the service's state, policy versions, entry rows and
their public shape, versions, screening rules."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.knowledge.domain import (
    DEFAULT_POLICY,
    Policy,
    is_valid,
)
from services.knowledge.models import entries, entry_versions, policy_versions
from services.knowledge.schemas import EntryPublic
from shared.calendar import WorkingCalendar
from shared.errors import NotFound
from shared.policy import PolicyVersions
from shared.service import ServiceContext

PRODUCER = "knowledge"

# The elements of an entry that make up its content (Art 16) and validity (Art 19).
TEXT_FIELDS = ("title", "body", "legal_basis", "scope", "applicable_subjects", "conditions")
LIST_FIELDS = ("related_entries", "faq", "matter_codes")
CONTENT_FIELDS = (*TEXT_FIELDS, *LIST_FIELDS, "kind", "valid_from", "valid_until")
SNAPSHOT_FIELDS = (
    "entry_id",
    "unit_id",
    "status",
    *CONTENT_FIELDS,
    "supersedes",
    "published_at",
    "confirmed_at",
    "withdrawn_at",
    "withdrawn_reason",
    "expired_at",
    "superseded_by",
)


class KnowledgeState:
    """In memory: the working-day calendar and the event that wakes the due-time scanner
    when a new due time is written."""

    def __init__(self) -> None:
        self.calendar = WorkingCalendar()
        self.wake = asyncio.Event()


def state(ctx: ServiceContext) -> KnowledgeState:
    knowledge: KnowledgeState = ctx.extras["knowledge"]
    return knowledge


def wake_scanner(ctx: ServiceContext) -> None:
    state(ctx).wake.set()


async def load_policies(conn: AsyncConnection) -> PolicyVersions[Policy]:
    rows = (await conn.execute(select(policy_versions))).all()
    return PolicyVersions(
        (Policy.from_row(r.effective_from, r.settings, r.created_by) for r in rows),
        default=DEFAULT_POLICY,
    )


async def policy_at(conn: AsyncConnection, at: datetime) -> Policy:
    """Read per command, so a change made through another instance counts at once."""
    return (await load_policies(conn)).in_force(at)


def screened_fields(content: Mapping[str, Any]) -> dict[str, str | None]:
    """Every text an entry carries, by the field name a finding reports."""
    fields: dict[str, str | None] = {f: content.get(f) for f in TEXT_FIELDS if f in content}
    for i, item in enumerate(content.get("faq") or []):
        fields[f"faq[{i}].question"] = item["question"]
        fields[f"faq[{i}].answer"] = item["answer"]
    return fields


async def entry_row(conn: AsyncConnection, entry_id: str, *, for_update: bool = False) -> Any:
    stmt = select(entries).where(entries.c.entry_id == entry_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f"no knowledge entry {entry_id}")
    return row


def entry_public(row: Any, now: datetime) -> EntryPublic:
    data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    data["valid"] = is_valid(data["status"], data["valid_from"], data["valid_until"], now)
    return EntryPublic.model_validate(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def snapshot(data: Mapping[str, Any]) -> dict[str, Any]:
    return {f: _jsonable(data.get(f)) for f in SNAPSHOT_FIELDS}


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """field → [before, after] for every content field that differs."""
    return {
        f: [_jsonable(before.get(f)), _jsonable(after.get(f))]
        for f in SNAPSHOT_FIELDS
        if f in after and _jsonable(before.get(f)) != _jsonable(after.get(f))
    }


async def record_version(
    conn: AsyncConnection,
    *,
    entry_id: str,
    version: int,
    change: str,
    at: datetime,
    by: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    note: str | None = None,
) -> None:
    """Every change keeps a version: who, when, what changed, and the entry as it became."""
    diff = changes(before, after)
    await conn.execute(
        insert(entry_versions).values(
            entry_id=entry_id,
            version=version,
            change=change,
            changed_at=at,
            changed_by=by,
            changed_fields=sorted(diff),
            diff=diff,
            snapshot=snapshot({**before, **after}),
            note=note,
        )
    )


async def save_change(
    conn: AsyncConnection,
    entry_id: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    change: str,
    note: str | None = None,
) -> None:
    """Write ``after`` over the entry and keep the version it makes (``after`` carries the
    new ``version``, ``updated_at`` and ``updated_by``)."""
    await conn.execute(update(entries).where(entries.c.entry_id == entry_id).values(after))
    await record_version(
        conn,
        entry_id=entry_id,
        version=after["version"],
        change=change,
        at=after["updated_at"],
        by=after["updated_by"],
        before=before,
        after=after,
        note=note,
    )
