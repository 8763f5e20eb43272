"""The SLA service's routes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from services.sla.handlers import admin, extensions, queries
from services.sla.schemas import (
    Board,
    CalendarChange,
    CalendarNotice,
    CalendarNoticePreview,
    CalendarStatus,
    CalendarYear,
    ExtensionApproval,
    ExtensionExplanation,
    ExtensionPublic,
    ExtensionRejection,
    ExtensionRequest,
    ExtensionsPublic,
    PolicyChange,
    PolicyPublic,
    TicketClocks,
)
from shared.access import ADMINS, EVERY_ROLE, Objects, access
from shared.auth import Role
from shared.params import Offset, Year
from shared.service import CallerDep, CtxDep

router = APIRouter(tags=["clocks"])
extension_router = APIRouter(tags=["extensions"])
admin_router = APIRouter(tags=["policy and calendar"])

# ---- who may call what (shared/access.py) ----------------------------------------------
# Each set names the roles its handlers accept; the handlers check the object (a unit's own
# tickets and extensions, a district agency's district).

# a unit reads its own tickets' clocks and extensions (the lead unit's, not a co-unit's)
CLOCK_READERS = access(*queries.READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN))
EXTENSION_READERS = access(
    *extensions.EXTENSION_READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
# Art 12: the assigned unit asks for more time and tells the requester; the agency decides
ASSIGNED_UNIT = access(Role.UNIT, objects=(Objects.OWN_UNIT,))
EXTENSION_REVIEWERS = access(Role.AGENCY, objects=(Objects.AGENCY,))


@router.get("/tickets/{ticket_id}/clocks", response_model=TicketClocks)
@CLOCK_READERS
async def ticket_clocks(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> TicketClocks:
    """A ticket's dispatch, acceptance and completion clocks (every round and re-dispatch):
    deadline, provisional flag, state, lateness, and its extension requests."""
    return await queries.ticket_clocks(ctx, caller, ticket_id)


@router.get("/board", response_model=Board)
@CLOCK_READERS
async def board(
    ctx: CtxDep,
    caller: CallerDep,
    status_: Annotated[Literal["overdue", "at_risk", "all"], Query(alias="status")] = "all",
    unit_id: str | None = None,
    district: str | None = None,
    urgency: Literal["life_safety", "livelihood", "general"] | None = None,
    kind: Literal["dispatch", "acceptance", "completion"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> Board:
    """Overdue and at-risk clocks, soonest deadline first; a unit sees only its own."""
    return await queries.board(
        ctx,
        caller,
        status=status_,
        unit_id=unit_id,
        district=district,
        urgency=urgency,
        kind=kind,
        limit=limit,
        offset=offset,
    )


@extension_router.post(
    "/tickets/{ticket_id}/extensions",
    status_code=status.HTTP_201_CREATED,
    response_model=ExtensionPublic,
)
@ASSIGNED_UNIT
async def request_extension(
    ticket_id: str, data: ExtensionRequest, ctx: CtxDep, caller: CallerDep
) -> ExtensionPublic:
    """延期申请 (Art 12): the assigned unit asks for more time; every rule is checked."""
    return await extensions.request_extension(ctx, caller, ticket_id, data)


@extension_router.get("/extensions", response_model=ExtensionsPublic)
@EXTENSION_READERS
async def list_extensions(
    ctx: CtxDep,
    caller: CallerDep,
    state_: Annotated[
        Literal["requested", "approved", "rejected"] | None, Query(alias="state")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> ExtensionsPublic:
    """Extension requests, oldest first (``state=requested``: the agency's review queue)."""
    data, count = await extensions.list_extensions(
        ctx, caller, state_=state_, limit=limit, offset=offset
    )
    return ExtensionsPublic(data=data, count=count)


@extension_router.get("/extensions/{extension_id}", response_model=ExtensionPublic)
@EXTENSION_READERS
async def get_extension(extension_id: str, ctx: CtxDep, caller: CallerDep) -> ExtensionPublic:
    return await extensions.get_extension(ctx, caller, extension_id)


@extension_router.post("/extensions/{extension_id}/approve", response_model=ExtensionPublic)
@EXTENSION_REVIEWERS
async def approve_extension(
    extension_id: str, data: ExtensionApproval, ctx: CtxDep, caller: CallerDep
) -> ExtensionPublic:
    """The agency approves: the deadline moves by the capped period."""
    return await extensions.decide_extension(
        ctx, caller, extension_id, approve=True, text=data.explanation_to_requester
    )


@extension_router.post("/extensions/{extension_id}/explanation", response_model=ExtensionPublic)
@ASSIGNED_UNIT
async def explain_extension(
    extension_id: str, data: ExtensionExplanation, ctx: CtxDep, caller: CallerDep
) -> ExtensionPublic:
    """The unit records how, when and what it told the requester about the approved
    extension (Art 12: 由承办单位向诉求人作出解释); the revisit sees it."""
    return await extensions.explain_extension(ctx, caller, extension_id, data)


@extension_router.post("/extensions/{extension_id}/reject", response_model=ExtensionPublic)
@EXTENSION_REVIEWERS
async def reject_extension(
    extension_id: str, data: ExtensionRejection, ctx: CtxDep, caller: CallerDep
) -> ExtensionPublic:
    """The agency rejects: the original deadline stands."""
    return await extensions.decide_extension(
        ctx, caller, extension_id, approve=False, text=data.reason
    )


@admin_router.get("/policy", response_model=PolicyPublic)
@access(*EVERY_ROLE)
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """The policy settings (periods, thresholds) in force, and every version."""
    return await admin.read_policy(ctx)


@admin_router.post("/policy/versions", response_model=PolicyPublic, status_code=201)
@admin_router.put("/policy", response_model=PolicyPublic, include_in_schema=False)
@ADMINS
async def change_policy(data: PolicyChange, ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """A new version of the settings (admin), for clocks started from its date on."""
    return await admin.change_policy(ctx, caller, data)


@admin_router.get("/calendar", response_model=CalendarStatus)
@access(*EVERY_ROLE)
async def calendar_status(ctx: CtxDep, caller: CallerDep) -> CalendarStatus:
    """Which years lack official data (their deadlines are provisional)."""
    return await admin.calendar_status(ctx)


@admin_router.get("/calendar/{year}", response_model=CalendarYear)
@access(*EVERY_ROLE)
async def read_calendar(year: Year, ctx: CtxDep, caller: CallerDep) -> CalendarYear:
    return await admin.read_calendar(ctx, year)


@admin_router.post("/calendar/{year}/notice", response_model=CalendarNoticePreview)
@ADMINS
async def import_notice(
    year: Year, data: CalendarNotice, ctx: CtxDep, caller: CallerDep
) -> CalendarNoticePreview:
    """Paste the State Council's holiday notice for ``year`` (admin): every 放假/补休/上班
    sentence becomes a day override; the year grid comes back for confirmation, and with
    ``confirm=true`` the year is entered and provisional deadlines are recomputed."""
    return await admin.import_notice(ctx, caller, year, data)


@admin_router.put("/calendar/{year}", response_model=CalendarYear)
@ADMINS
async def change_calendar(
    year: Year, data: CalendarChange, ctx: CtxDep, caller: CallerDep
) -> CalendarYear:
    """Admin overrides per date; ``complete: true`` enters the whole year, and provisional
    deadlines are recomputed."""
    return await admin.change_calendar(ctx, caller, year, data)
