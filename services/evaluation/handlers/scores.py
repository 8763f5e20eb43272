"""Unit scores (Art 23): on-time acceptance and completion, satisfaction and resolution,
the weighted composite, the ranking, the "three rates" by unit, district or matter, and
the CSV export. Every figure lists the tickets it counted when asked (``explain``)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.evaluation.domain import (
    ExemptionState,
    Figure,
    FinalRating,
    Handling,
    Outcome,
    Rating,
    ReportingPeriod,
    RevisitState,
    Scorecard,
    ScoreWeights,
    ranking,
    scorecards,
)
from services.evaluation.handlers.common import (
    policy_at,
    reporting_period,
    scoped_unit,
    unit_names,
)
from services.evaluation.models import exemptions, handlings, revisits, sla_clocks, tickets
from services.evaluation.schemas import (
    CountedTicket,
    FigurePublic,
    RatesPublic,
    RatesRow,
    UnitScorePublic,
    UnitScoresPublic,
)
from shared.auth import Caller, Role
from shared.errors import Forbidden
from shared.service import ServiceContext

GroupBy = Literal["unit", "district", "matter"]
READERS = (Role.AGENCY, Role.GOVSERVICE, Role.ADMIN, Role.AUTHORITY, Role.UNIT)


def _in(column: Any, period: ReportingPeriod) -> Any:
    return and_(column >= period.start, column < period.end)


async def load_handlings(
    conn: AsyncConnection, period: ReportingPeriod, unit_id: str | None = None
) -> list[Handling]:
    acceptance, completion = sla_clocks.alias("acceptance"), sla_clocks.alias("completion")

    def clock(alias: Any, kind: str) -> Any:
        return and_(
            alias.c.ticket_id == handlings.c.ticket_id,
            alias.c.clock == kind,
            alias.c.round == handlings.c.round,
            alias.c.unit_key == handlings.c.unit_id,
        )

    query = (
        select(
            handlings,
            acceptance.c.overdue_at.label("acceptance_overdue_at"),
            completion.c.overdue_at.label("completion_overdue_at"),
        )
        .select_from(
            handlings.outerjoin(acceptance, clock(acceptance, "acceptance")).outerjoin(
                completion, clock(completion, "completion")
            )
        )
        .where(or_(_in(handlings.c.dispatched_at, period), _in(handlings.c.accepted_at, period)))
    )
    if unit_id is not None:
        query = query.where(handlings.c.unit_id == unit_id)
    rows = (await conn.execute(query)).all()
    return [
        Handling(
            ticket_id=r.ticket_id,
            round=r.round,
            dispatch_no=r.dispatch_no,
            unit_id=r.unit_id,
            district=r.district,
            matter_code=r.matter_code,
            dispatched_at=r.dispatched_at,
            accepted_at=r.accepted_at,
            completed_at=r.completed_at,
            returned=r.returned_at is not None,
            acceptance_overdue=r.acceptance_overdue_at is not None,
            completion_overdue=r.completion_overdue_at is not None,
        )
        for r in rows
    ]


async def load_ratings(
    conn: AsyncConnection, period: ReportingPeriod, unit_id: str | None = None
) -> list[FinalRating]:
    """Final ratings only (Art 14): a first dissatisfied rating that was sent back is
    replaced by the second one."""
    accepted = and_(
        exemptions.c.ticket_id == revisits.c.ticket_id,
        exemptions.c.round == revisits.c.round,
        exemptions.c.state == ExemptionState.ACCEPTED.value,
    )
    query = (
        select(
            revisits,
            exemptions.c.exemption_id,
            tickets.c.district,
            tickets.c.matter_code,
        )
        .select_from(
            revisits.outerjoin(exemptions, accepted).outerjoin(
                tickets, tickets.c.ticket_id == revisits.c.ticket_id
            )
        )
        .where(
            revisits.c.state == RevisitState.CLOSED.value,
            revisits.c.rating.is_not(None),
            _in(revisits.c.recorded_at, period),
        )
    )
    if unit_id is not None:
        query = query.where(revisits.c.unit_id == unit_id)
    rows = (await conn.execute(query)).all()
    return [
        FinalRating(
            ticket_id=r.ticket_id,
            round=r.round,
            unit_id=r.unit_id,
            district=r.district or "",
            matter_code=r.matter_code or "",
            rating=Rating(r.rating),
            resolved=bool(r.resolved),
            recorded_at=r.recorded_at,
            exempted=r.exemption_id is not None,
        )
        for r in rows
    ]


def _figure(figure: Figure, explain: bool) -> FigurePublic:
    rate = figure.rate
    return FigurePublic(
        numerator=figure.numerator,
        denominator=figure.denominator,
        rate=round(rate, 4) if rate is not None else None,
        tickets=[
            CountedTicket(
                ticket_id=e.ticket_id,
                round=e.round,
                outcome=e.outcome.value,
                counted=e.counted,
                favourable=e.favourable,
            )
            for e in sorted(figure.entries, key=lambda e: (e.ticket_id, e.round))
        ]
        if explain
        else None,
    )


def _score_row(
    rank: int | None, card: Scorecard, names: dict[str, str], explain: bool
) -> UnitScorePublic:
    f = card.figures
    return UnitScorePublic(
        rank=rank,
        unit_id=card.key,
        unit_name=names.get(card.key),
        on_time_acceptance=_figure(f["on_time_acceptance"], explain),
        on_time_completion=_figure(f["on_time_completion"], explain),
        satisfaction=_figure(f["satisfaction"], explain),
        resolution=_figure(f["resolution"], explain),
        exempted=sum(1 for e in f["satisfaction"].entries if e.outcome is Outcome.EXEMPTED),
        composite=card.composite,
    )


async def _cards(
    ctx: ServiceContext,
    start: date | None,
    end: date | None,
    by: GroupBy,
    district: str | None = None,
) -> tuple[list[Scorecard], dict[str, str], ScoreWeights, date, date]:
    period, first, last = reporting_period(start, end, ctx.clock.now())
    async with ctx.db.engine.connect() as conn:
        weights = (await policy_at(conn, period.end)).score_weights
        handled = await load_handlings(conn, period)
        rated = await load_ratings(conn, period)
        names = await unit_names(conn)
    if district is not None:  # Art 3: a district agency's statistics cover its district
        handled = [h for h in handled if h.district == district]
        rated = [r for r in rated if r.district == district]

    def key(item: Handling | FinalRating) -> str:
        if by == "district":
            return item.district
        if by == "matter":
            return item.matter_code
        return item.unit_id

    cards = scorecards(handled, rated, period, key, weights)
    return ranking(cards.values()), names, weights, first, last


async def unit_scores(
    ctx: ServiceContext,
    caller: Caller,
    *,
    start: date | None,
    end: date | None,
    unit_id: str | None,
    explain: bool,
) -> UnitScoresPublic:
    """The ranking of units for the period; a unit user sees its own row (with its rank)."""
    caller.require(*READERS)
    only = scoped_unit(caller, unit_id)
    ranked, names, weights, first, last = await _cards(
        ctx, start, end, "unit", caller.district_scope
    )
    rows = [
        _score_row(n if card.composite is not None else None, card, names, explain)
        for n, card in enumerate(ranked, 1)
    ]
    if only is not None:
        rows = [r for r in rows if r.unit_id == only] or [
            _score_row(None, Scorecard(only), names, explain)
        ]
    return UnitScoresPublic(
        period_from=first, period_to=last, weights=weights.as_dict(), data=rows, count=len(rows)
    )


async def rates(
    ctx: ServiceContext,
    caller: Caller,
    *,
    by: GroupBy,
    start: date | None,
    end: date | None,
    explain: bool,
) -> RatesPublic:
    """三率: response (on-time acceptance), resolution and satisfaction rates."""
    caller.require(*READERS)
    if caller.role is Role.UNIT and by != "unit":
        raise Forbidden("a unit sees only its own unit's rates")
    return await compute_rates(
        ctx,
        by=by,
        start=start,
        end=end,
        explain=explain,
        only=scoped_unit(caller, None),
        district=caller.district_scope,
    )


async def compute_rates(
    ctx: ServiceContext,
    *,
    by: GroupBy,
    start: date | None,
    end: date | None,
    explain: bool,
    only: str | None = None,
    district: str | None = None,
) -> RatesPublic:
    ranked, names, _, first, last = await _cards(ctx, start, end, by, district)
    rows = [
        RatesRow(
            key=card.key,
            name=names.get(card.key) if by == "unit" else None,
            response=_figure(card.figures["on_time_acceptance"], explain),
            resolution=_figure(card.figures["resolution"], explain),
            satisfaction=_figure(card.figures["satisfaction"], explain),
        )
        for card in sorted(ranked, key=lambda c: c.key)
        if only is None or card.key == only
    ]
    return RatesPublic(by=by, period_from=first, period_to=last, data=rows, count=len(rows))


CSV_COLUMNS = (
    "rank",
    "unit_id",
    "unit_name",
    "on_time_acceptance",
    "accepted_on_time",
    "acceptance_counted",
    "on_time_completion",
    "completed_on_time",
    "completion_counted",
    "satisfaction",
    "satisfied",
    "satisfaction_counted",
    "exempted",
    "resolution",
    "resolved",
    "resolution_counted",
    "composite",
)


async def scores_csv(
    ctx: ServiceContext, caller: Caller, *, start: date | None, end: date | None
) -> tuple[str, str]:
    """Bulk export: agency and admin only (Art 28, 29). Returns (file name, CSV text)."""
    caller.require(Role.AGENCY, Role.ADMIN)
    scores = await unit_scores(ctx, caller, start=start, end=end, unit_id=None, explain=False)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in scores.data:
        writer.writerow(
            [
                r.rank or "",
                r.unit_id,
                r.unit_name or "",
                _cell(r.on_time_acceptance.rate),
                r.on_time_acceptance.numerator,
                r.on_time_acceptance.denominator,
                _cell(r.on_time_completion.rate),
                r.on_time_completion.numerator,
                r.on_time_completion.denominator,
                _cell(r.satisfaction.rate),
                r.satisfaction.numerator,
                r.satisfaction.denominator,
                r.exempted,
                _cell(r.resolution.rate),
                r.resolution.numerator,
                r.resolution.denominator,
                _cell(r.composite),
            ]
        )
    name = f"unit-scores-{scores.period_from.isoformat()}-{scores.period_to.isoformat()}.csv"
    return name, out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value}"
