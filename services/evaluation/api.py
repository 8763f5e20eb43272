"""The evaluation service's routes: parse, authorise (in the handler), call one handler."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import FileResponse, Response

from services.evaluation.domain import ExemptionState, RevisitState, SupervisionState
from services.evaluation.handlers import (
    exemptions,
    govservice,
    monitoring,
    policy,
    revisits,
    scores,
    social,
    supervision,
)
from services.evaluation.schemas import (
    ExemptionDecision,
    ExemptionPublic,
    ExemptionsPublic,
    FlaggedTicketsPublic,
    HotspotsPublic,
    OpinionAnswer,
    OpinionCreate,
    OpinionPublic,
    OpinionsPublic,
    PolicyCreate,
    PolicyPublic,
    PublicStatistics,
    RatesPublic,
    RevisitDecision,
    RevisitPublic,
    RevisitRecord,
    RevisitsPublic,
    ScoreSignoffCreate,
    ScoreSignoffPublic,
    ScoreSignoffsPublic,
    SocialSupervisorCreate,
    SocialSupervisorPublic,
    SocialSupervisorsPublic,
    SupervisionAnswer,
    SupervisionClose,
    SupervisionCreate,
    SupervisionPublic,
    SupervisionsPublic,
    UnitScoresPublic,
)
from shared.access import ADMINS, EVERY_ROLE, Objects, access
from shared.auth import Role
from shared.params import Offset
from shared.service import CallerDep, CtxDep

Limit = Annotated[int, Query(ge=1, le=500)]
From = Annotated[date | None, Query(alias="from", description="first day (Shanghai), inclusive")]
To = Annotated[date | None, Query(alias="to", description="last day (Shanghai), inclusive")]
Explain = Annotated[bool, Query(description="list the tickets behind every figure")]

# ---- who may call what (shared/access.py) ------------------------------------------------------
# Each set names the roles its handlers accept; the handlers check the object (a unit's own
# revisits, exemptions, supervisions and scores; a district agency's district).

REVISIT_READERS = access(
    *revisits.READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
EXEMPTION_READERS = access(
    *exemptions.READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
SUPERVISION_READERS = access(
    *supervision.READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
# a unit for itself: its exemption request (Art 24), its answer to a supervision (Art 21)
UNIT_FOR_ITSELF = access(Role.UNIT, objects=(Objects.OWN_UNIT,))
# the agency's decisions: revisits (Art 14), exemptions (Art 24), supervision (Art 21)
AGENCY_DECIDES = access(Role.AGENCY, objects=(Objects.AGENCY,))
# a unit its own scores and rates (by unit only), an authority its industry's (Art 23)
SCORE_READERS = access(
    *scores.READERS, objects=(Objects.OWN_UNIT, Objects.INDUSTRY, Objects.AGENCY, Objects.ADMIN)
)
MONITORING_READERS = access(*monitoring.READERS, objects=(Objects.AGENCY, Objects.ADMIN))
# Art 22, 23: what the government-services department alone does, and who reads it
GOVSERVICE_DEPARTMENT = access(Role.GOVSERVICE, objects=(Objects.AGENCY,))
GOVSERVICE_RECORDS = access(
    Role.AGENCY, Role.GOVSERVICE, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN)
)
# Art 22: appointed social supervisors (their own opinions) and those who hear them
SOCIAL_SUPERVISION = access(*social.STATISTICS_READERS, objects=(Objects.AGENCY, Objects.ADMIN))

# ---- revisits (Art 14) ------------------------------------------------------------------------

revisit_router = APIRouter(prefix="/revisits", tags=["revisits"])


@revisit_router.get("", response_model=RevisitsPublic)
@REVISIT_READERS
async def list_revisits(
    ctx: CtxDep,
    caller: CallerDep,
    state: RevisitState | None = None,
    overdue: bool | None = None,
    unit_id: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RevisitsPublic:
    """Revisits by due time; ``overdue=true`` lists open revisits past their due time."""
    return await revisits.list_revisits(
        ctx, caller, state=state, overdue=overdue, unit_id=unit_id, limit=limit, offset=offset
    )


@revisit_router.post("/{ticket_id}", response_model=RevisitPublic)
@access(Role.OPERATOR, Role.AGENCY, objects=(Objects.AGENCY,))
async def record_revisit(
    ticket_id: str, data: RevisitRecord, ctx: CtxDep, caller: CallerDep
) -> RevisitPublic:
    """回访: record the requester's rating of a completed ticket."""
    return await revisits.record_revisit(ctx, caller, ticket_id, data)


@revisit_router.get("/{ticket_id}", response_model=RevisitPublic)
@REVISIT_READERS
async def get_revisit(ticket_id: str, ctx: CtxDep, caller: CallerDep) -> RevisitPublic:
    return await revisits.get_revisit(ctx, caller, ticket_id)


@revisit_router.post("/{ticket_id}/decision", response_model=RevisitPublic)
@AGENCY_DECIDES
async def decide_revisit(
    ticket_id: str, data: RevisitDecision, ctx: CtxDep, caller: CallerDep
) -> RevisitPublic:
    """After a first dissatisfied rating: send back for re-handling (once) or close."""
    return await revisits.decide(ctx, caller, ticket_id, data)


# ---- exemptions (Art 24) ----------------------------------------------------------------------

exemption_router = APIRouter(prefix="/exemptions", tags=["exemptions"])


@exemption_router.post("", status_code=status.HTTP_201_CREATED, response_model=ExemptionPublic)
@UNIT_FOR_ITSELF
async def file_exemption(
    ctx: CtxDep,
    caller: CallerDep,
    ticket_id: Annotated[str, Form(max_length=32)],
    explanation: Annotated[str, Form(max_length=8000)],
    files: Annotated[list[UploadFile], File(description="evidence (佐证材料)")],
    round: Annotated[int | None, Form(ge=1, le=2)] = None,
) -> ExemptionPublic:
    """The unit's written explanation of a dissatisfied rating, with evidence files."""
    return await exemptions.file_exemption(
        ctx, caller, ticket_id=ticket_id, round_=round, explanation=explanation, files=files
    )


@exemption_router.get("", response_model=ExemptionsPublic)
@EXEMPTION_READERS
async def list_exemptions(
    ctx: CtxDep,
    caller: CallerDep,
    state: ExemptionState | None = None,
    unit_id: str | None = None,
    ticket_id: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ExemptionsPublic:
    return await exemptions.list_exemptions(
        ctx,
        caller,
        state_=state,
        unit_id=unit_id,
        ticket_id=ticket_id,
        limit=limit,
        offset=offset,
    )


@exemption_router.get("/{exemption_id}", response_model=ExemptionPublic)
@EXEMPTION_READERS
async def get_exemption(exemption_id: str, ctx: CtxDep, caller: CallerDep) -> ExemptionPublic:
    return await exemptions.get_exemption(ctx, caller, exemption_id)


@exemption_router.get("/{exemption_id}/files/{file_id}", response_class=FileResponse)
@EXEMPTION_READERS
async def evidence_file(
    exemption_id: str, file_id: str, ctx: CtxDep, caller: CallerDep
) -> FileResponse:
    found = await exemptions.evidence_file(ctx, caller, exemption_id, file_id)
    return FileResponse(found.path, media_type=found.content_type, filename=found.filename)


@exemption_router.post("/{exemption_id}/decision", response_model=ExemptionPublic)
@AGENCY_DECIDES
async def decide_exemption(
    exemption_id: str, data: ExemptionDecision, ctx: CtxDep, caller: CallerDep
) -> ExemptionPublic:
    """Accept (the rating leaves the unit's satisfaction rate) or reject, with a reason."""
    return await exemptions.decide_exemption(ctx, caller, exemption_id, data)


# ---- scores (Art 23) --------------------------------------------------------------------------

score_router = APIRouter(tags=["scores"])


@score_router.get("/scores", response_model=UnitScoresPublic)
@SCORE_READERS
async def unit_scores(
    ctx: CtxDep, caller: CallerDep, start: From = None, end: To = None, explain: Explain = False
) -> UnitScoresPublic:
    """The units ranked by composite score for the period (default: this month)."""
    return await scores.unit_scores(
        ctx, caller, start=start, end=end, unit_id=None, explain=explain
    )


@score_router.get("/scores.csv", response_class=Response)
@access(Role.AGENCY, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def unit_scores_csv(
    ctx: CtxDep, caller: CallerDep, start: From = None, end: To = None
) -> Response:
    """The ranking as CSV (agency and admin only)."""
    name, text = await scores.scores_csv(ctx, caller, start=start, end=end)
    return Response(
        text.encode("utf-8-sig"),  # a BOM, so spreadsheet programs read the Chinese names
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@score_router.post("/scores/signoffs", response_model=ScoreSignoffPublic, status_code=201)
@GOVSERVICE_DEPARTMENT
async def sign_off_scores(
    data: ScoreSignoffCreate, ctx: CtxDep, caller: CallerDep
) -> ScoreSignoffPublic:
    """Art 23: the government-services department signs off a closed period's unit
    evaluation; the ranking is frozen as signed."""
    return await govservice.sign_off(ctx, caller, data)


@score_router.get("/scores/signoffs", response_model=ScoreSignoffsPublic)
@GOVSERVICE_RECORDS
async def list_signoffs(ctx: CtxDep, caller: CallerDep) -> ScoreSignoffsPublic:
    return await govservice.list_signoffs(ctx, caller)


@score_router.get("/scores/{unit_id}", response_model=UnitScoresPublic)
@SCORE_READERS
async def one_unit_score(
    unit_id: str,
    ctx: CtxDep,
    caller: CallerDep,
    start: From = None,
    end: To = None,
    explain: Explain = False,
) -> UnitScoresPublic:
    return await scores.unit_scores(
        ctx, caller, start=start, end=end, unit_id=unit_id, explain=explain
    )


@score_router.get("/rates", response_model=RatesPublic)
@SCORE_READERS
async def three_rates(
    ctx: CtxDep,
    caller: CallerDep,
    by: Annotated[str, Query(pattern="^(unit|district|matter)$")] = "unit",
    start: From = None,
    end: To = None,
    explain: Explain = False,
) -> RatesPublic:
    """三率: response, resolution and satisfaction rates by unit, district or matter."""
    return await scores.rates(
        ctx,
        caller,
        by=by,  # type: ignore[arg-type]
        start=start,
        end=end,
        explain=explain,
    )


# ---- supervision (Art 21) ---------------------------------------------------------------------

supervision_router = APIRouter(prefix="/supervisions", tags=["supervision"])


@supervision_router.post("", status_code=status.HTTP_201_CREATED, response_model=SupervisionPublic)
@AGENCY_DECIDES
async def open_supervision(
    data: SupervisionCreate, ctx: CtxDep, caller: CallerDep
) -> SupervisionPublic:
    """督办 by hand; a written supervision goes to the unit's parent."""
    return await supervision.open_supervision(ctx, caller, data)


@supervision_router.get("", response_model=SupervisionsPublic)
@SUPERVISION_READERS
async def list_supervisions(
    ctx: CtxDep,
    caller: CallerDep,
    state: SupervisionState | None = None,
    unit_id: str | None = None,
    ticket_id: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SupervisionsPublic:
    return await supervision.list_supervisions(
        ctx,
        caller,
        state=state,
        unit_id=unit_id,
        ticket_id=ticket_id,
        limit=limit,
        offset=offset,
    )


@supervision_router.get("/{supervision_id}", response_model=SupervisionPublic)
@SUPERVISION_READERS
async def get_supervision(supervision_id: str, ctx: CtxDep, caller: CallerDep) -> SupervisionPublic:
    return await supervision.get_supervision(ctx, caller, supervision_id)


@supervision_router.post("/{supervision_id}/answer", response_model=SupervisionPublic)
@UNIT_FOR_ITSELF
async def answer_supervision(
    supervision_id: str, data: SupervisionAnswer, ctx: CtxDep, caller: CallerDep
) -> SupervisionPublic:
    """The addressed unit's answer."""
    return await supervision.answer_supervision(ctx, caller, supervision_id, data)


@supervision_router.post("/{supervision_id}/close", response_model=SupervisionPublic)
@AGENCY_DECIDES
async def close_supervision(
    supervision_id: str, data: SupervisionClose, ctx: CtxDep, caller: CallerDep
) -> SupervisionPublic:
    return await supervision.close_supervision(ctx, caller, supervision_id, data)


# ---- monitoring (Art 27) ----------------------------------------------------------------------

monitoring_router = APIRouter(tags=["monitoring"])


@monitoring_router.get("/hotspots", response_model=HotspotsPublic)
@MONITORING_READERS
async def list_hotspots(
    ctx: CtxDep,
    caller: CallerDep,
    active: bool | None = None,
    matter_code: str | None = None,
    district: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> HotspotsPublic:
    """Hotspots, newest first; ``active=true`` for the ones still active."""
    return await monitoring.list_hotspots(
        ctx,
        caller,
        active=active,
        matter_code=matter_code,
        district=district,
        limit=limit,
        offset=offset,
    )


@monitoring_router.get("/flagged", response_model=FlaggedTicketsPublic)
@MONITORING_READERS
async def list_flagged(
    ctx: CtxDep,
    caller: CallerDep,
    state: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> FlaggedTicketsPublic:
    """Sensitive or extreme tickets with where each one stands."""
    return await monitoring.list_flagged(ctx, caller, state=state, limit=limit, offset=offset)


# ---- social supervisors (Art 22) --------------------------------------------------------------

social_router = APIRouter(tags=["social supervision"])


@social_router.get("/public/statistics", response_model=PublicStatistics)
@SOCIAL_SUPERVISION
async def public_statistics(
    ctx: CtxDep, caller: CallerDep, start: From = None, end: To = None
) -> PublicStatistics:
    """Anonymised statistics: counts and rates, nothing personal."""
    return await social.public_statistics(ctx, caller, start=start, end=end)


@social_router.post("/opinions", status_code=status.HTTP_201_CREATED, response_model=OpinionPublic)
@access(Role.SUPERVISOR)  # an appointed one (Art 22), checked by the handler
async def submit_opinion(data: OpinionCreate, ctx: CtxDep, caller: CallerDep) -> OpinionPublic:
    return await social.submit_opinion(ctx, caller, data)


@social_router.get("/opinions", response_model=OpinionsPublic)
@SOCIAL_SUPERVISION
async def list_opinions(
    ctx: CtxDep,
    caller: CallerDep,
    state: Annotated[str | None, Query(pattern="^(open|answered)$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> OpinionsPublic:
    return await social.list_opinions(ctx, caller, state=state, limit=limit, offset=offset)


@social_router.post("/opinions/{opinion_id}/answer", response_model=OpinionPublic)
@access(Role.AGENCY, Role.GOVSERVICE, objects=(Objects.AGENCY,))
async def answer_opinion(
    opinion_id: str, data: OpinionAnswer, ctx: CtxDep, caller: CallerDep
) -> OpinionPublic:
    return await social.answer_opinion(ctx, caller, opinion_id, data)


# ---- the social supervisor team (Art 22) ------------------------------------------------------

team_router = APIRouter(prefix="/social-supervisors", tags=["social supervision"])


@team_router.post("", response_model=SocialSupervisorPublic, status_code=201)
@GOVSERVICE_DEPARTMENT
async def appoint_supervisor(
    data: SocialSupervisorCreate, ctx: CtxDep, caller: CallerDep
) -> SocialSupervisorPublic:
    """The government-services department appoints a social supervisor (Art 22); only
    appointed supervisors read the statistics and submit opinions."""
    return await govservice.appoint_supervisor(ctx, caller, data)


@team_router.get("", response_model=SocialSupervisorsPublic)
@GOVSERVICE_RECORDS
async def list_supervisors(ctx: CtxDep, caller: CallerDep) -> SocialSupervisorsPublic:
    return await govservice.list_supervisors(ctx, caller)


@team_router.post("/{username}/dismiss", response_model=SocialSupervisorPublic)
@GOVSERVICE_DEPARTMENT
async def dismiss_supervisor(
    username: str, ctx: CtxDep, caller: CallerDep
) -> SocialSupervisorPublic:
    return await govservice.dismiss_supervisor(ctx, caller, username)


# ---- policy -------------------------------------------------------------------------------------

policy_router = APIRouter(prefix="/policy", tags=["policy"])


@policy_router.get("", response_model=PolicyPublic)
@access(*EVERY_ROLE)
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """The evaluation policy settings in force, and every version."""
    return await policy.read_policy(ctx)


@policy_router.post("/versions", status_code=status.HTTP_201_CREATED, response_model=PolicyPublic)
@policy_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PolicyPublic, include_in_schema=False
)
@ADMINS
async def add_policy_version(data: PolicyCreate, ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """A new version of the settings from ``effective_from`` on (admin)."""
    return await policy.add_policy_version(ctx, caller, data)


ROUTERS = [
    revisit_router,
    exemption_router,
    score_router,
    supervision_router,
    monitoring_router,
    social_router,
    policy_router,
    team_router,
]
