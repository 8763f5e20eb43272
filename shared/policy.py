"""Versioned policy settings, one mechanism for every service.

RULES.md: the values the regulation leaves open are policy settings, versioned by effective
date, so a later revision of the rules is data, not a code change. Each service keeps its
own typed settings (``S``) and table; this module holds what is the same everywhere: which
version is in force at an instant, the one check a new version must pass (one error, one
status), and storing a version. Every service serves the same route shape: ``GET /policy``
(the version in force and every version) and ``POST /policy/versions`` (admin, 201, the
same body); ``POST /policy`` (``PUT`` for sla) stays as a hidden alias for older clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.calendar import shanghai_time as shanghai
from shared.errors import IllegalTransition, InvalidInput

# The Tianjin implementation rules are in force from 2026-01-01 (Art 31): every service's
# default version, carrying the regulation's own numbers, is effective from that instant.
REGULATION_IN_FORCE = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 Shanghai
PAST_VERSION_RULE = "policy versions take effect from now on; what was in force stays as it was"
DUPLICATE_VERSION_RULE = "one policy version per effective date"


class Versioned(Protocol):
    @property
    def effective_from(self) -> datetime: ...


S = TypeVar("S", bound=Versioned)


class PolicyVersions(Generic[S]):
    """Every version of one service's settings, oldest first."""

    def __init__(self, versions: Iterable[S], default: S | None = None) -> None:
        self._versions = sorted(versions, key=lambda v: v.effective_from)
        if not self._versions:
            if default is None:
                raise ValueError("a policy needs at least one version")
            self._versions = [default]

    def __iter__(self) -> Iterator[S]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)

    def in_force(self, at: datetime) -> S:
        """The newest version effective at ``at``; before the first, the first."""
        current = self._versions[0]
        for version in self._versions:
            if version.effective_from > at:
                break
            current = version
        return current

    def check_new(self, effective_from: datetime, now: datetime) -> None:
        """A new version may not rewrite the past (422) nor share a date (409)."""
        check_new_version(effective_from, now)
        if any(v.effective_from == effective_from for v in self._versions):
            raise duplicate_version(effective_from)


def check_new_version(effective_from: datetime, now: datetime) -> None:
    if effective_from < now:
        raise InvalidInput(
            "effective_from",
            f"{shanghai(effective_from)} lies before now ({shanghai(now)}); choose an "
            "effective date from now on",
            rule=PAST_VERSION_RULE,
        )


def duplicate_version(effective_from: datetime) -> IllegalTransition:
    return IllegalTransition(
        f"a policy version effective from {shanghai(effective_from)} exists",
        rule=DUPLICATE_VERSION_RULE,
    )


async def insert_version(
    conn: AsyncConnection,
    table: Table,
    *,
    effective_from: datetime,
    settings: dict[str, Any],
    created_by: str,
    now: datetime,
) -> None:
    """Store a version after ``check_new``; a concurrent twin is refused the same way."""
    check_new_version(effective_from, now)
    taken = await conn.scalar(
        select(table.c.effective_from).where(table.c.effective_from == effective_from)
    )
    if taken is not None:
        raise duplicate_version(effective_from)
    values: dict[str, Any] = {
        "effective_from": effective_from,
        "settings": settings,
        "created_by": created_by,
    }
    if "created_at" in table.c:
        values["created_at"] = now
    try:
        await conn.execute(insert(table).values(values))
    except IntegrityError:
        raise duplicate_version(effective_from) from None
