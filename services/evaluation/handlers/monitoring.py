"""Dynamic monitoring (Art 27): hotspots of one matter in one district within a sliding
window, and the sensitive or extreme tickets intake flagged."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from orjson import dumps, loads
from sqlalchemy import JSON, Column, Integer, Text, bindparam, case, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from services.evaluation.domain import (
    HotspotStep,
    burst_span,
    counted_recent,
    first_full_window,
    hotspot_step,
    window_reaches_threshold,
)
from services.evaluation.handlers.common import (
    PRODUCER,
    cached_policies,
    cached_policy_at,
    new_id,
)
from services.evaluation.models import hotspot_tickets, hotspot_tracks, hotspots, tickets
from services.evaluation.schemas import (
    FlaggedTicketPublic,
    FlaggedTicketsPublic,
    HotspotPublic,
    HotspotsPublic,
)
from shared.auth import Caller, Role
from shared.db import (
    UnitOfWork,
    fetch_rows,
    given_rows,
    given_values,
    in_transaction,
    insert_ignoring_duplicates,
    insert_new,
    pair_of,
    pairs_in,
    update_many,
)
from shared.events import HotspotDetected
from shared.service import ServiceContext

READERS = (Role.OPERATOR, Role.AGENCY, Role.ADMIN)


async def _tickets_since(
    conn: AsyncConnection, matter_code: str, district: str, after: datetime
) -> list[Any]:
    """The stored tickets of one matter and district registered after ``after``, in order."""
    query = select(tickets.c.ticket_id, tickets.c.registered_at).where(
        tickets.c.matter_code == matter_code,
        tickets.c.district == district,
        tickets.c.registered_at > after,
    )
    order = (tickets.c.registered_at, tickets.c.ticket_id)
    return list((await conn.execute(query.order_by(*order))).all())


class Registration(NamedTuple):
    ticket_id: str
    matter_code: str
    district: str
    registered_at: datetime


class Joining(NamedTuple):
    """A ticket into the active hotspot of its matter and district."""

    hotspot_id: str
    ticket_id: str
    registered_at: datetime
    active_until: datetime  # the hotspot's with this ticket: one window after the latest


def _earlier(column: Column[datetime]) -> ColumnElement[datetime]:
    given = bindparam(f"v_{column.key}", type_=column.type)
    return case((column <= given, column), else_=given)


def _later(column: Column[datetime]) -> ColumnElement[datetime]:
    given = bindparam(f"v_{column.key}", type_=column.type)
    return case((column >= given, column), else_=given)


# a hotspot's row with the tickets joining it: counted by what was added, its span widened
JOINED = {
    "ticket_count": hotspots.c.ticket_count + bindparam("v_ticket_count", type_=Integer),
    "first_registered_at": _earlier(hotspots.c.first_registered_at),
    "last_registered_at": _later(hotspots.c.last_registered_at),
    "active_until": _later(hotspots.c.active_until),
}


async def tally_hotspots(
    ctx: ServiceContext, uow: UnitOfWork, registrations: Sequence[Registration]
) -> None:
    """``tally_hotspot`` for many tickets: each matter and district's counter is read
    once; tickets that only count and tickets that join an active hotspot are tallied in
    memory and written in a few statements for the whole batch. A ticket that opens a
    hotspot, or that the counter cannot judge, goes one by one; the rest of its matter and
    district is tallied the same way after it, in another round (joining the hotspot it
    opened), so a batch takes as many rounds as its busiest pair has such tickets.

    The batch's tickets are all stored before they are tallied: a ticket registered
    inside a hotspot's window but heard after the tickets that open it, in the same batch,
    is listed in ``monitor.hotspot`` instead of joining the hotspot just after it (the
    hotspot ends up with the same tickets)."""
    groups: dict[tuple[str, str], list[Registration]] = {}
    for r in registrations:
        groups.setdefault((r.matter_code, r.district), []).append(r)
    while groups:
        groups = await _tally_round(ctx, uow, groups)


async def _tally_round(
    ctx: ServiceContext, uow: UnitOfWork, groups: dict[tuple[str, str], list[Registration]]
) -> dict[tuple[str, str], list[Registration]]:
    """Each matter and district's tickets in memory up to the first that must go one by
    one, which then does; what is left after it, for the next round."""
    conn = uow.conn
    pairs = sorted(groups)
    await lock_tallies(conn)
    tracks = await _tracks(ctx, conn, pairs)
    missing = [p for p in pairs if p not in tracks]
    if missing:  # a matter and district's first tickets (the tracks are there after that)
        rows = [{"matter_code": m, "district": d} for m, d in missing]
        await insert_new(conn, hotspot_tracks, rows)
        tracks.update(await _tracks(ctx, conn, missing))
    tallies: list[dict[str, Any]] = []
    joining: list[Joining] = []
    one_by_one: dict[tuple[str, str], list[Registration]] = {}
    policies = await cached_policies(ctx, conn)
    postgres = ctx.db.is_postgres
    read_time = datetime.fromisoformat
    for pair in pairs:
        track = tracks[pair]
        stored = track.recent
        # on PostgreSQL the counter's JSON text as stored (``_TRACKS_PG``), else its list
        texts: list[str] = (loads(stored) if postgres else list(stored)) if stored else []
        recent = [read_time(t) for t in texts]
        tallied, active_until = track.tallied, track.active_until
        group = groups[pair]
        for position, r in enumerate(group):
            # compared and counted in UTC, as the counter's times are read back: a time in
            # another zone (an event's, as decoded) is compared through its offset every
            # time (~0.25 us a comparison, a dozen a ticket)
            at = r.registered_at.astimezone(UTC)
            setting = policies.in_force(at).settings.hotspot
            threshold = setting.threshold
            reaches: bool | None = False
            if active_until is None or at >= active_until:
                reaches = window_reaches_threshold(
                    recent, tallied, at, setting.window_delta, threshold
                )
            step = hotspot_step(active_until, at, threshold if reaches else 0, threshold)
            if reaches is None or step is HotspotStep.OPEN:
                one_by_one[pair] = group[position:]
                break
            if step is HotspotStep.JOIN:
                assert active_until is not None and track.hotspot_id is not None
                active_until = max(active_until, at + setting.window_delta)
                joining.append(Joining(track.hotspot_id, r.ticket_id, at, active_until))
            recent, texts = _counted(recent, texts, at, threshold)
            tallied += 1
        if tallied != track.tallied:
            tallies.append(
                {
                    "k_matter_code": pair[0],
                    "k_district": pair[1],
                    "v_recent": dumps(texts).decode() if postgres else texts,
                    "v_tallied": tallied,
                    "v_active_until": active_until,
                }
            )
    await _tallied(conn, postgres, tallies)
    await _join(conn, joining)
    after: dict[tuple[str, str], list[Registration]] = {}
    for pair, (r, *rest) in one_by_one.items():
        await tally_hotspot(
            ctx,
            uow,
            ticket_id=r.ticket_id,
            matter_code=r.matter_code,
            district=r.district,
            registered_at=r.registered_at,
        )
        if rest:
            after[pair] = rest
    return after


def _counted(
    recent: list[datetime], texts: list[str], at: datetime, threshold: int
) -> tuple[list[datetime], list[str]]:
    """``counted_recent`` of a track's counter (``recent``, the times of its ISO texts
    ``texts``) with its texts as they are stored: a time the counter held keeps the text
    it was read or written as (a time is formatted once, when counted: ~0.9 us a time).

    A ticket no older than the counter's newest (as nearly always) goes last, as
    ``counted_recent``'s sort puts it; else the texts follow their times by identity (the
    counter keeps the very objects it held; hashing an aware datetime makes its UTC time
    first, ~0.35 us)."""
    if not recent or at >= recent[-1]:
        dropped = max(len(recent) + 1 - max(threshold, 1), 0)  # the oldest, beyond the count
        return [*recent[dropped:], at], [*texts[dropped:], at.isoformat()]
    counted = counted_recent(recent, at, threshold)
    as_text = {id(t): text for t, text in zip(recent, texts, strict=True)}
    return counted, [as_text.get(id(t)) or t.isoformat() for t in counted]


# a track's tally written (PostgreSQL): its counter as JSON text made here (orjson), not
# dumped again by the column's type
_TALLY_ROW = {
    "k_matter_code": hotspot_tracks.c.matter_code.type,
    "k_district": hotspot_tracks.c.district.type,
    "v_recent": Text(),
    "v_tallied": hotspot_tracks.c.tallied.type,
    "v_active_until": hotspot_tracks.c.active_until.type,
}


@cache
def _tallied_pg() -> Any:
    v = given_rows(_TALLY_ROW)
    return (
        update(hotspot_tracks)
        .where(*(c == v[f"k_{c.key}"] for c in _PAIR))
        .values(
            recent=cast(v["v_recent"], JSON),
            tallied=v["v_tallied"],
            active_until=v["v_active_until"],
        )
    )


async def _tallied(conn: AsyncConnection, postgres: bool, tallies: list[dict[str, Any]]) -> None:
    """The tracks' new counters, their tallies and ``active_until`` (each pair once)."""
    if not tallies:
        return
    if postgres:
        columns = {name: [t[name] for t in tallies] for name in _TALLY_ROW}
        await fetch_rows(conn, _tallied_pg(), given_values(columns))
        return
    rows = [{name[2:]: value for name, value in t.items()} for t in tallies]
    await update_many(conn, hotspot_tracks, ["matter_code", "district"], rows)


async def _join(conn: AsyncConnection, joining: Sequence[Joining]) -> None:
    """Tickets into their active hotspots, in one statement each for all of them: a
    hotspot counts the tickets it did not hold yet (one heard again is not counted twice)
    and stays active one window after its latest."""
    added = Counter(
        r.hotspot_id
        for r in await insert_new(
            conn,
            hotspot_tickets,
            [{"hotspot_id": j.hotspot_id, "ticket_id": j.ticket_id} for j in joining],
            hotspot_tickets.c.hotspot_id,
        )
    )
    spans: dict[str, dict[str, Any]] = {}
    for j in joining:
        span = spans.setdefault(
            j.hotspot_id,
            {
                "hotspot_id": j.hotspot_id,
                "ticket_count": added[j.hotspot_id],
                "first_registered_at": j.registered_at,
                "last_registered_at": j.registered_at,
                "active_until": j.active_until,
            },
        )
        span["first_registered_at"] = min(span["first_registered_at"], j.registered_at)
        span["last_registered_at"] = max(span["last_registered_at"], j.registered_at)
        span["active_until"] = max(span["active_until"], j.active_until)
    await update_many(conn, hotspots, ["hotspot_id"], list(spans.values()), merge=JOINED)


_PAIR = (hotspot_tracks.c.matter_code, hotspot_tracks.c.district)
_PAIRS = ("matters", "districts")


def _tracks_in_order(where: ColumnElement[bool]) -> Any:
    """The tracks ``where`` holds, in one order."""
    return select(hotspot_tracks).where(where).order_by(*_PAIR)


# the tracks of the pairs given (on PostgreSQL: built once, read on the driver's connection),
# the counter as its JSON text (read with orjson: the driver's codec reads JSON with the
# json module, ~3 us a track)
_TRACKS_PG = (
    select(*(cast(c, Text).label(c.key) if c.key == "recent" else c for c in hotspot_tracks.c))
    .where(pairs_in(_PAIR, _PAIRS))
    .order_by(*_PAIR)
)
# The tally's lock (PostgreSQL): two consumers never decide on one matter and district at
# once. One transaction-scoped advisory lock for the service's tallies, not ``SELECT … FOR
# UPDATE`` of the tracks: a row lock writes a WAL record and dirties the track's page, one a
# ticket (issue 12); this lock lives in memory only, and it also holds a pair whose track
# does not exist yet. Taken in a statement before the tracks are read, so the read's
# snapshot shows what the lock's previous holder committed (PostgreSQL ends a transaction in
# the proc array before it releases its locks). One lock, not one a pair: a batch's ~100
# pairs' locks cost PostgreSQL more than the row locks did (bench/hotspot_tracks.py), and
# two instances' batches, each over most of the busy pairs, would wait for each other anyway.
_TALLY_LOCK = "SELECT pg_advisory_xact_lock($1::bigint)"
_TALLY_KEY = zlib.crc32(b"tally:evaluation.hotspot_tracks")


async def lock_tallies(conn: AsyncConnection) -> None:
    """Take the tally's lock to the end of ``conn``'s transaction (PostgreSQL; SQLite writes
    one transaction at a time anyway); taken again by the same transaction, it is held."""
    if conn.dialect.name != "postgresql":
        return
    raw = await in_transaction(conn)
    if raw is not None:  # on the driver: the statement prepared once per connection
        await raw.execute(_TALLY_LOCK, _TALLY_KEY)
    else:  # the transaction's first statement: SQLAlchemy begins it
        await conn.exec_driver_sql(_TALLY_LOCK, (_TALLY_KEY,))


async def _tracks(
    ctx: ServiceContext, conn: AsyncConnection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """The tracks of ``pairs`` (matter and district) that exist (locked by the caller)."""
    if ctx.db.is_postgres:
        given = dict(zip(_PAIRS, ([m for m, _ in pairs], [d for _, d in pairs]), strict=True))
        found = await fetch_rows(conn, _TRACKS_PG, given)
    else:
        found = list((await conn.execute(_tracks_in_order(pair_of(conn, _PAIR, pairs)))).all())
    return {(t.matter_code, t.district): t for t in found}


async def tally_hotspot(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    ticket_id: str,
    matter_code: str,
    district: str,
    registered_at: datetime,
) -> None:
    """Count the new ticket into its matter and district; open a hotspot (and emit
    ``monitor.hotspot``, in this transaction) when the window reaches the threshold."""
    conn = uow.conn
    setting = (await cached_policy_at(ctx, conn, registered_at)).hotspot
    window = setting.window_delta
    await lock_tallies(conn)
    await conn.execute(
        insert_ignoring_duplicates(conn, hotspot_tracks).values(
            matter_code=matter_code, district=district
        )
    )
    track_query = select(hotspot_tracks).where(
        hotspot_tracks.c.matter_code == matter_code, hotspot_tracks.c.district == district
    )
    track = (await conn.execute(track_query)).one()
    recent = [datetime.fromisoformat(t) for t in track.recent or ()]
    await conn.execute(
        update(hotspot_tracks)
        .where(hotspot_tracks.c.matter_code == matter_code, hotspot_tracks.c.district == district)
        .values(
            recent=[
                t.isoformat() for t in counted_recent(recent, registered_at, setting.threshold)
            ],
            tallied=hotspot_tracks.c.tallied + 1,
        )
    )
    reaches: bool | None = False
    opened_at = registered_at
    around: list[Any] | None = None
    if track.active_until is None or registered_at >= track.active_until:  # JOIN needs no count
        reaches = window_reaches_threshold(
            recent, track.tallied, registered_at, window, setting.threshold
        )
        if reaches is None:  # the counter cannot tell (a late ticket): count
            around = await _tickets_since(conn, matter_code, district, registered_at - window)
            times = [r.registered_at for r in around]
            full = first_full_window(times, registered_at, window, setting.threshold)
            reaches = full is not None
            opened_at = full or registered_at
    step = hotspot_step(
        track.active_until, registered_at, setting.threshold if reaches else 0, setting.threshold
    )
    if step is HotspotStep.NONE:
        return
    if step is HotspotStep.JOIN:
        assert track.active_until is not None and track.hotspot_id is not None
        active_until = max(track.active_until, registered_at + window)
        await _join(conn, [Joining(track.hotspot_id, ticket_id, registered_at, active_until)])
        await conn.execute(
            update(hotspot_tracks)
            .where(
                hotspot_tracks.c.matter_code == matter_code, hotspot_tracks.c.district == district
            )
            .values(active_until=active_until)
        )
        return
    hotspot_id = new_id()
    now = ctx.clock.now()
    if around is None:
        around = await _tickets_since(conn, matter_code, district, opened_at - window)
    newest = recent[-1] if recent else None  # tickets counted before this one
    start, end = burst_span([r.registered_at for r in around], opened_at, window, newest)
    in_window = around[start:end]
    first, last = in_window[0].registered_at, in_window[-1].registered_at
    active_until = last + window
    await conn.execute(
        hotspots.insert().values(
            hotspot_id=hotspot_id,
            matter_code=matter_code,
            district=district,
            window=setting.window,
            threshold=setting.threshold,
            first_registered_at=first,
            last_registered_at=last,
            active_until=active_until,
            ticket_count=len(in_window),
            detected_at=now,
        )
    )
    await conn.execute(
        hotspot_tickets.insert(),
        [{"hotspot_id": hotspot_id, "ticket_id": r.ticket_id} for r in in_window],
    )
    await conn.execute(
        update(hotspot_tracks)
        .where(hotspot_tracks.c.matter_code == matter_code, hotspot_tracks.c.district == district)
        .values(hotspot_id=hotspot_id, active_until=active_until)
    )
    uow.emit(
        HotspotDetected(
            hotspot_id=hotspot_id,
            matter_code=matter_code,
            district=district,
            window=setting.window,
            threshold=setting.threshold,
            ticket_count=len(in_window),
            first_registered_at=first,
            last_registered_at=last,
            detected_at=now,
            ticket_ids=[r.ticket_id for r in in_window],
        ).outgoing(producer=PRODUCER, occurred_at=now)
    )


# ---- queries --------------------------------------------------------------------------------


async def list_hotspots(
    ctx: ServiceContext,
    caller: Caller,
    *,
    active: bool | None,
    matter_code: str | None,
    district: str | None,
    limit: int,
    offset: int,
) -> HotspotsPublic:
    caller.require(*READERS)
    if district is not None:
        caller.require_district(district)
    district = caller.district_scope or district  # Art 3: a district agency's hotspots
    now = ctx.clock.now()
    query = select(hotspots)
    if active is True:
        query = query.where(hotspots.c.active_until > now)
    elif active is False:
        query = query.where(hotspots.c.active_until <= now)
    if matter_code is not None:
        query = query.where(hotspots.c.matter_code == matter_code)
    if district is not None:
        query = query.where(hotspots.c.district == district)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(hotspots.c.detected_at.desc()).limit(limit).offset(offset)
            )
        ).all()
        members: dict[str, list[str]] = {r.hotspot_id: [] for r in rows}
        if members:
            for m in (
                await conn.execute(
                    select(hotspot_tickets)
                    .where(hotspot_tickets.c.hotspot_id.in_(list(members)))
                    .order_by(hotspot_tickets.c.ticket_id)
                )
            ).all():
                members[m.hotspot_id].append(m.ticket_id)
    return HotspotsPublic(
        data=[
            HotspotPublic(
                **dict(r._mapping), active=r.active_until > now, ticket_ids=members[r.hotspot_id]
            )
            for r in rows
        ],
        count=count or 0,
    )


async def list_flagged(
    ctx: ServiceContext, caller: Caller, *, state: str | None, limit: int, offset: int
) -> FlaggedTicketsPublic:
    """Art 27: sensitive or extreme tickets, newest first, with where each one stands."""
    caller.require(*READERS)
    query: Any = select(tickets).where(tickets.c.flagged.is_(True))
    if caller.district_scope is not None:  # Art 3: a district agency's flagged tickets
        query = query.where(tickets.c.district == caller.district_scope)
    if state is not None:
        query = query.where(tickets.c.state == state)
    async with ctx.db.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(query.subquery()))
        rows = (
            await conn.execute(
                query.order_by(tickets.c.flagged_at.desc()).limit(limit).offset(offset)
            )
        ).all()
    return FlaggedTicketsPublic(
        data=[
            FlaggedTicketPublic(
                ticket_id=r.ticket_id,
                flagged_at=r.flagged_at,
                keywords=list(r.flag_keywords or []),
                matter_code=r.matter_code,
                district=r.district,
                type=r.type,
                state=r.state,
                unit_id=r.unit_id,
                registered_at=r.registered_at,
            )
            for r in rows
        ],
        count=count or 0,
    )
