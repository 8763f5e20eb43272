"""Dispatch's routes: parse, authorise, call one handler."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.dispatch.handlers import (
    catalog,
    determinations,
    policy,
    queries,
    returns,
    staff,
    tickets,
)
from services.dispatch.handlers.suggest import suggest
from services.dispatch.schemas import (
    AssigneeSet,
    AssignmentPublic,
    AssignmentsPublic,
    CatalogDocument,
    CatalogVersionPublic,
    CatalogVersionsPublic,
    DeterminationCreate,
    DeterminationPublic,
    DeterminationsPublic,
    InboxPublic,
    InputCreate,
    InputPublic,
    ManualDispatch,
    MatterIn,
    MatterPublic,
    MatterUpdate,
    PolicyPublic,
    PolicyVersion,
    PositionCreate,
    PositionsPublic,
    Referral,
    ReplyCreate,
    ReturnApproval,
    ReturnCreate,
    ReturnPublic,
    ReturnRejection,
    ReturnsPublic,
    StaffList,
    SuggestionCreate,
    SuggestionPublic,
    UnitIn,
    UnitPublic,
    UnitUpdate,
)
from shared.access import ADMINS, EVERY_ROLE, Objects, access
from shared.auth import Role
from shared.params import Offset
from shared.service import CallerDep, CtxDep

Limit = Annotated[int, Query(ge=1, le=200)]

router = APIRouter(prefix="/tickets", tags=["assignments"])
queue_router = APIRouter(tags=["queues"])
catalog_router = APIRouter(tags=["catalog"])

# ---- who may call what (shared/access.py) ----------------------------------------------
# Each set names the roles its handlers accept; the handlers check the object (a unit's own
# or co-handled ticket, an authority's industry, a district agency's district).

HOTLINE = (Objects.AGENCY, Objects.ADMIN)  # the hotline's staff and the administrators: the city

# handlers/queries.READING_ROLES; a unit its own and co-handled tickets, an authority its
# industry's
TICKET_READERS = access(
    *queries.READING_ROLES, objects=(Objects.OWN_UNIT, Objects.CO_UNIT, Objects.INDUSTRY, *HOTLINE)
)
# 派单 by hand and referral for a determination: the hotline's operators and agency
HOTLINE_DISPATCHERS = access(Role.OPERATOR, Role.AGENCY, objects=(Objects.AGENCY,))
# the assigned unit on its own ticket: accept, reply, assign its staff, ask to return
ASSIGNED_UNIT = access(Role.UNIT, objects=(Objects.OWN_UNIT,))
# Art 8: the parties to a determination (an authority for its own industry), and who follows
# the cases
DETERMINATION_PARTIES = access(*determinations.PARTIES, objects=(Objects.INDUSTRY, Objects.AGENCY))
DETERMINATION_READERS = access(*determinations.READERS, objects=(Objects.INDUSTRY, *HOTLINE))
# the suggested matter and unit (Art 26): those who dispatch, and the Art 8 authority
SUGGESTION_READERS = access(
    Role.OPERATOR, Role.AGENCY, Role.AUTHORITY, Role.ADMIN, objects=(Objects.INDUSTRY, *HOTLINE)
)
# Art 10: the agency reviews a unit's return request
RETURN_REVIEWERS = access(Role.AGENCY, objects=(Objects.AGENCY,))
# a unit's queues and staff: the unit its own, the hotline every unit's
UNIT_READERS = access(
    Role.OPERATOR, Role.AGENCY, Role.UNIT, Role.ADMIN, objects=(Objects.OWN_UNIT, *HOTLINE)
)
CATALOG_KEEPERS = access(Role.AGENCY, Role.ADMIN, objects=HOTLINE)


# ---- tickets --------------------------------------------------------------------------


@router.get("", response_model=AssignmentsPublic)
@TICKET_READERS
async def list_assignments(
    ctx: CtxDep,
    caller: CallerDep,
    state: str | None = None,
    unit_id: str | None = None,
    matter_code: str | None = None,
    district: str | None = None,
    flagged: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> AssignmentsPublic:
    """Assignments, flagged first, newest first; ``state=pending_dispatch`` is the manual
    queue. A unit user sees only its own and co-handled tickets."""
    return await queries.list_assignments(
        ctx,
        caller,
        state=state,
        unit_id=unit_id,
        matter_code=matter_code,
        district=district,
        flagged=flagged,
        limit=limit,
        offset=offset,
    )


@router.get("/{ticket_id}", response_model=AssignmentPublic)
@TICKET_READERS
async def get_assignment(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> AssignmentPublic:
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/dispatch", response_model=AssignmentPublic)
@HOTLINE_DISPATCHERS
async def dispatch(
    ticket_id: str, body: ManualDispatch, ctx: CtxDep, caller: CallerDep
) -> AssignmentPublic:
    """派单 by hand from the manual queue (operator, agency); Art 8 checks apply. A ticket
    waiting for a determination only because the catalog names no unit for its matter may
    be dispatched by the agency with the reason in ``note`` (recorded on the case)."""
    await tickets.dispatch_manually(ctx, caller, ticket_id, body)
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/refer", response_model=AssignmentPublic)
@HOTLINE_DISPATCHERS
async def refer(ticket_id: str, body: Referral, ctx: CtxDep, caller: CallerDep) -> AssignmentPublic:
    """Disputed responsibility: to the determination queue (Art 8)."""
    await tickets.refer_for_determination(ctx, caller, ticket_id, body)
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/determination", response_model=DeterminationPublic)
@DETERMINATION_PARTIES
async def determine(
    ticket_id: str, body: DeterminationCreate, ctx: CtxDep, caller: CallerDep
) -> DeterminationPublic:
    """职责界定 (Art 8): the authority (same industry) names the unit; a cross-industry
    case is decided jointly — the government-services department, the agency and each
    industry authority concerned record positions first, and the decision (by the
    department or the agency) follows the department's. The ticket is then dispatched."""
    return await determinations.decide(ctx, caller, ticket_id, body)


@router.post("/{ticket_id}/assignee", response_model=AssignmentPublic)
@ASSIGNED_UNIT
async def assign(
    ticket_id: str, body: AssigneeSet, ctx: CtxDep, caller: CallerDep
) -> AssignmentPublic:
    """The lead unit gives the work order to one of its handling staff (专人, Art 4)."""
    await staff.assign(ctx, caller, ticket_id, body)
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/determination/positions", response_model=PositionsPublic)
@DETERMINATION_PARTIES
async def record_position(
    ticket_id: str, body: PositionCreate, ctx: CtxDep, caller: CallerDep
) -> PositionsPublic:
    """A party's position in a joint determination (Art 8): govservice, agency, or an
    industry authority; recording again replaces the party's earlier position."""
    return await determinations.record_position(ctx, caller, ticket_id, body)


@router.get("/{ticket_id}/determination/positions", response_model=PositionsPublic)
@DETERMINATION_READERS
async def list_positions(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> PositionsPublic:
    """The positions recorded so far and the parties still to be heard."""
    return await determinations.list_positions(ctx, caller, ticket_id)


@router.get("/{ticket_id}/suggestion", response_model=SuggestionPublic)
@SUGGESTION_READERS
async def ticket_suggestion(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> SuggestionPublic:
    """The suggested matter and unit for the ticket's text, with a confidence."""
    found = await queries.get_assignment(ctx, caller, ticket_id)
    async with ctx.db.engine.connect() as conn:
        return await suggest(ctx, conn, found.content or "", found.district)


@router.post("/{ticket_id}/accept", response_model=AssignmentPublic)
@ASSIGNED_UNIT
async def accept(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> AssignmentPublic:
    """接收: the lead unit accepts the ticket; stops its acceptance clock."""
    await tickets.accept_ticket(ctx, caller, ticket_id)
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/complete", response_model=AssignmentPublic)
@ASSIGNED_UNIT
async def complete(
    ticket_id: str, reply: ReplyCreate, ctx: CtxDep, caller: CallerDep
) -> AssignmentPublic:
    """办结: the lead unit's reply (Art 13); stops the completion clock."""
    await tickets.complete_ticket(ctx, caller, ticket_id, reply)
    return await queries.get_assignment(ctx, caller, ticket_id)


@router.post("/{ticket_id}/inputs", response_model=InputPublic, status_code=201)
@access(Role.UNIT, objects=(Objects.CO_UNIT,))  # 协办: a co-unit
async def add_input(
    ticket_id: str, body: InputCreate, ctx: CtxDep, caller: CallerDep
) -> InputPublic:
    """协办: a co-unit's input for the lead unit."""
    return await tickets.add_input(ctx, caller, ticket_id, body)


@router.post("/{ticket_id}/return", response_model=ReturnPublic, status_code=201)
@ASSIGNED_UNIT
async def request_return(
    ticket_id: str, body: ReturnCreate, ctx: CtxDep, caller: CallerDep
) -> ReturnPublic:
    """退回 (Art 10): the assigned unit, before accepting, with a reason and a basis."""
    return await returns.request_return(ctx, caller, ticket_id, body)


@router.post("/{ticket_id}/return/approve", response_model=ReturnPublic)
@RETURN_REVIEWERS
async def approve_return(
    ticket_id: str, body: ReturnApproval, ctx: CtxDep, caller: CallerDep
) -> ReturnPublic:
    """The agency approves (unless Art 10 forbids it); the ticket is re-dispatched."""
    return await returns.approve_return(ctx, caller, ticket_id, body)


@router.post("/{ticket_id}/return/reject", response_model=ReturnPublic)
@RETURN_REVIEWERS
async def reject_return(
    ticket_id: str, body: ReturnRejection, ctx: CtxDep, caller: CallerDep
) -> ReturnPublic:
    """The agency rejects with a written reason; the unit continues, clocks unchanged."""
    return await returns.reject_return(ctx, caller, ticket_id, body)


# ---- queues ---------------------------------------------------------------------------


@queue_router.get("/inbox", response_model=InboxPublic, tags=["queues"])
@UNIT_READERS
async def inbox(
    ctx: CtxDep,
    caller: CallerDep,
    unit_id: str | None = None,
    state: str | None = None,
    assignee: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> InboxPublic:
    """A unit's tickets: flagged first, then the soonest deadline; counts per state;
    ``assignee`` keeps one staff member's work orders (Art 4)."""
    return await queries.inbox(
        ctx, caller, unit_id=unit_id, state=state, limit=limit, offset=offset, assignee=assignee
    )


@queue_router.get("/returns", response_model=ReturnsPublic)
@UNIT_READERS
async def list_returns(
    ctx: CtxDep,
    caller: CallerDep,
    status: str | None = "pending",
    limit: Limit = 50,
    offset: Offset = 0,
) -> ReturnsPublic:
    """Return requests; by default the agency's review queue."""
    return await returns.list_returns(ctx, caller, status=status, limit=limit, offset=offset)


@queue_router.get("/determinations", response_model=DeterminationsPublic)
@DETERMINATION_READERS
async def list_determinations(
    ctx: CtxDep,
    caller: CallerDep,
    status: str | None = "pending",
    limit: Limit = 50,
    offset: Offset = 0,
) -> DeterminationsPublic:
    """Determination cases; by default those waiting for a decision."""
    return await determinations.list_determinations(
        ctx, caller, status=status, limit=limit, offset=offset
    )


@queue_router.post("/suggestions", response_model=SuggestionPublic)
@SUGGESTION_READERS
async def suggest_for_text(
    body: SuggestionCreate, ctx: CtxDep, caller: CallerDep
) -> SuggestionPublic:
    """Matter and unit for a request's text (e.g. while an operator registers it)."""
    async with ctx.db.engine.connect() as conn:
        return await suggest(ctx, conn, body.content, body.district)


@queue_router.get("/policy", response_model=PolicyPublic, tags=["policy"])
@access(Role.OPERATOR, Role.AGENCY, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    return await policy.read_policy(ctx, caller)


@queue_router.post(
    "/policy/versions", response_model=PolicyPublic, status_code=201, tags=["policy"]
)
@queue_router.post("/policy", response_model=PolicyPublic, status_code=201, include_in_schema=False)
@ADMINS
async def add_policy_version(body: PolicyVersion, ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """A new version of the dispatch settings from its effective date (admin)."""
    return await policy.add_policy_version(ctx, caller, body)


# ---- units and the catalog ------------------------------------------------------------


@catalog_router.get("/units", response_model=list[UnitPublic])
@access(*EVERY_ROLE)
async def list_units(
    ctx: CtxDep,
    caller: CallerDep,
    district: str | None = None,
    level: str | None = None,
    industry: str | None = None,
    include_inactive: bool = False,
) -> list[UnitPublic]:
    return await catalog.list_units(
        ctx,
        caller,
        district=district,
        level=level,
        industry=industry,
        include_inactive=include_inactive,
    )


@catalog_router.put("/units/{unit_id}/staff", response_model=StaffList)
@access(Role.UNIT, Role.ADMIN, objects=(Objects.OWN_UNIT, Objects.ADMIN))
async def set_staff(unit_id: str, body: StaffList, ctx: CtxDep, caller: CallerDep) -> StaffList:
    """The unit names its responsible staff for acceptance, handling, coordination and reply,
    with deputies (专人, Art 4); every duty needs a responsible person."""
    return await staff.set_staff(ctx, caller, unit_id, body)


@catalog_router.get("/units/{unit_id}/staff", response_model=StaffList)
@UNIT_READERS
async def get_staff(unit_id: str, ctx: CtxDep, caller: CallerDep) -> StaffList:
    return await staff.get_staff(ctx, caller, unit_id)


@catalog_router.get("/units/{unit_id}", response_model=UnitPublic)
@access(*EVERY_ROLE)
async def get_unit(unit_id: str, ctx: CtxDep, caller: CallerDep) -> UnitPublic:
    return await catalog.get_unit(ctx, caller, unit_id)


@catalog_router.post("/units", response_model=UnitPublic, status_code=201)
@ADMINS
async def create_unit(body: UnitIn, ctx: CtxDep, caller: CallerDep) -> UnitPublic:
    return await catalog.save_unit(ctx, caller, body, create=True)


@catalog_router.put("/units/{unit_id}", response_model=UnitPublic)
@ADMINS
async def update_unit(unit_id: str, body: UnitUpdate, ctx: CtxDep, caller: CallerDep) -> UnitPublic:
    return await catalog.update_unit(ctx, caller, unit_id, body)


@catalog_router.delete("/units/{unit_id}", response_model=UnitPublic)
@ADMINS
async def retire_unit(unit_id: str, ctx: CtxDep, caller: CallerDep) -> UnitPublic:
    """Deactivates the unit; refused while the catalog names it."""
    return await catalog.retire_unit(ctx, caller, unit_id)


@catalog_router.get("/catalog/matters", response_model=list[MatterPublic])
@access(*EVERY_ROLE)
async def list_matters(
    ctx: CtxDep, caller: CallerDep, include_inactive: bool = False
) -> list[MatterPublic]:
    return await catalog.list_matters(ctx, caller, include_inactive=include_inactive)


@catalog_router.get("/catalog/matters/{code}", response_model=MatterPublic)
@access(*EVERY_ROLE)
async def get_matter(code: str, ctx: CtxDep, caller: CallerDep) -> MatterPublic:
    return await catalog.get_matter(ctx, caller, code)


@catalog_router.post("/catalog/matters", response_model=MatterPublic, status_code=201)
@ADMINS
async def create_matter(body: MatterIn, ctx: CtxDep, caller: CallerDep) -> MatterPublic:
    return await catalog.create_matter(ctx, caller, body)


@catalog_router.put("/catalog/matters/{code}", response_model=MatterPublic)
@ADMINS
async def update_matter(
    code: str, body: MatterUpdate, ctx: CtxDep, caller: CallerDep
) -> MatterPublic:
    """A change now, or from ``effective_from`` (a new catalog version)."""
    return await catalog.update_matter(ctx, caller, code, body)


@catalog_router.delete("/catalog/matters/{code}", response_model=MatterPublic)
@ADMINS
async def retire_matter(code: str, ctx: CtxDep, caller: CallerDep) -> MatterPublic:
    return await catalog.retire_matter(ctx, caller, code)


@catalog_router.get("/catalog/export", response_model=CatalogDocument)
@CATALOG_KEEPERS
async def export_catalog(ctx: CtxDep, caller: CallerDep) -> CatalogDocument:
    return await catalog.export_catalog(ctx, caller)


@catalog_router.post("/catalog/import", response_model=CatalogVersionPublic, status_code=201)
@ADMINS
async def import_catalog(
    body: CatalogDocument, ctx: CtxDep, caller: CallerDep
) -> CatalogVersionPublic:
    """Merge units and matters as a new catalog version, now or from ``effective_from``."""
    return await catalog.import_catalog(ctx, caller, body)


@catalog_router.get("/catalog/versions", response_model=CatalogVersionsPublic)
@CATALOG_KEEPERS
async def list_versions(
    ctx: CtxDep,
    caller: CallerDep,
    pending: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CatalogVersionsPublic:
    return await catalog.list_versions(ctx, caller, pending=pending, limit=limit, offset=offset)


@catalog_router.post("/catalog/republish")
@ADMINS
async def republish(ctx: CtxDep, caller: CallerDep) -> dict[str, int]:
    """Emit every unit and matter again (a consumer rebuilding its read model)."""
    return await catalog.republish(ctx, caller)
