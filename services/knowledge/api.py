"""The knowledge service's routes: parse, authorise, call one handler."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from services.knowledge.domain import (
    EDITING_ROLES,
    READING_ROLES,
    WIDE_READERS,
    EntryKind,
    EntryStatus,
    RequestStatus,
)
from services.knowledge.handlers import (
    cases,
    entries,
    notices,
    policy,
    queries,
    requests,
    screening,
)
from services.knowledge.schemas import (
    CaseCreate,
    CasePublic,
    CaseReview,
    CasesPublic,
    EntriesPublic,
    EntryConfirm,
    EntryCreate,
    EntryPublic,
    EntryUpdate,
    EntryWithdraw,
    PolicyNoticeCreate,
    PolicyNoticePublic,
    PolicyNoticesPublic,
    PolicyPublic,
    PolicyVersionCreate,
    ReindexResult,
    ScreeningOverruleCreate,
    ScreeningOverrulePublic,
    ScreeningOverrulesPublic,
    SearchResults,
    Suggestions,
    SuggestRequest,
    UnitNoticeRecords,
    UpdateRequestAnswer,
    UpdateRequestCreate,
    UpdateRequestPublic,
    UpdateRequestsPublic,
    VersionPublic,
    VersionsPublic,
)
from shared.access import ADMINS, EVERY_ROLE, Objects, access, public
from shared.auth import Role
from shared.params import Version
from shared.service import CallerDep, CtxDep

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=10_000)]

# ---- who may call what (shared/access.py) ------------------------------------------------
# Each set names the roles its handlers accept; the handlers check the object (a unit's own
# entries, requests, notices and overrules; valid entries only, beyond a unit's own).

# Art 15, 20: a unit keeps its own knowledge (entries, update requests, policy notices,
# screening overrules); the agency and the administrator every unit's
KNOWLEDGE_KEEPERS = access(
    *EDITING_ROLES, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
# valid entries for everyone who answers or handles requests (RULES §11)
ENTRY_READERS = access(
    *READING_ROLES, objects=(Objects.OWN_UNIT, Objects.INDUSTRY, Objects.AGENCY, Objects.ADMIN)
)
# an entry's versions (who changed what): its unit, the agency, the administrator
ENTRY_HISTORY = access(*WIDE_READERS, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN))
# policy notices (Art 18): those who keep them, and the operators who answer with them
NOTICE_READERS = access(
    Role.OPERATOR, *EDITING_ROLES, objects=(Objects.OWN_UNIT, Objects.AGENCY, Objects.ADMIN)
)
# Art 20, 25, 30: the agency's reviews (typical cases, screening overrules)
AGENCY_REVIEWERS = access(Role.AGENCY, objects=(Objects.AGENCY,))

entries_router = APIRouter(prefix="/entries", tags=["entries"])


@entries_router.post("", status_code=status.HTTP_201_CREATED, response_model=EntryPublic)
@KNOWLEDGE_KEEPERS
async def create_entry(data: EntryCreate, ctx: CtxDep, caller: CallerDep) -> EntryPublic:
    """Create an entry (published unless ``publish`` is false). Validity is capped by kind
    (Art 19); personal information and classification markings are refused (Art 20)."""
    return await entries.create_entry(ctx, caller, data)


@entries_router.get("", response_model=EntriesPublic)
@ENTRY_READERS
async def list_entries(
    ctx: CtxDep,
    caller: CallerDep,
    unit_id: str | None = None,
    kind: EntryKind | None = None,
    status: EntryStatus | None = None,
    matter_code: str | None = None,
    include_invalid: bool = False,
    valid_until_before: AwareDatetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> EntriesPublic:
    """Entries by filter, soonest to expire first. Valid ones only unless the caller may
    and does ask for more."""
    flt = queries.search_filter(
        caller,
        ctx.clock.now(),
        include_invalid=include_invalid,
        status=status,
        kind=kind,
        unit_id=unit_id,
        matter_code=matter_code,
        valid_until_before=valid_until_before,
    )
    return await entries.list_entries(ctx, caller, flt, limit=limit, offset=offset)


@entries_router.get("/{entry_id}", response_model=EntryPublic)
@ENTRY_READERS
async def get_entry(entry_id: str, ctx: CtxDep, caller: CallerDep) -> EntryPublic:
    return await entries.get_entry(ctx, caller, entry_id)


@entries_router.patch("/{entry_id}", response_model=EntryPublic)
@KNOWLEDGE_KEEPERS
async def update_entry(
    entry_id: str, data: EntryUpdate, ctx: CtxDep, caller: CallerDep
) -> EntryPublic:
    """Revise an entry (its owner): a new version, screened again, re-indexed."""
    return await entries.update_entry(ctx, caller, entry_id, data)


@entries_router.post("/{entry_id}/publish", response_model=EntryPublic)
@KNOWLEDGE_KEEPERS
async def publish_entry(entry_id: str, ctx: CtxDep, caller: CallerDep) -> EntryPublic:
    """Publish a draft, or an expired entry whose validity was renewed."""
    return await entries.publish_entry(ctx, caller, entry_id)


@entries_router.post("/{entry_id}/confirm", response_model=EntryPublic)
@KNOWLEDGE_KEEPERS
async def confirm_entry(
    entry_id: str, ctx: CtxDep, caller: CallerDep, data: EntryConfirm | None = None
) -> EntryPublic:
    """The owner confirms the entry is still right: validity renewed within the kind's
    cap, counted from now (Art 19)."""
    return await entries.confirm_entry(ctx, caller, entry_id, data or EntryConfirm())


@entries_router.post("/{entry_id}/withdraw", response_model=EntryPublic)
@KNOWLEDGE_KEEPERS
async def withdraw_entry(
    entry_id: str, data: EntryWithdraw, ctx: CtxDep, caller: CallerDep
) -> EntryPublic:
    return await entries.withdraw_entry(ctx, caller, entry_id, data)


@entries_router.get("/{entry_id}/versions", response_model=VersionsPublic)
@ENTRY_HISTORY
async def list_versions(entry_id: str, ctx: CtxDep, caller: CallerDep) -> VersionsPublic:
    """Every change: who, when, which fields."""
    return await entries.list_versions(ctx, caller, entry_id)


@entries_router.get("/{entry_id}/versions/{version}", response_model=VersionPublic)
@ENTRY_HISTORY
async def get_version(
    entry_id: str, version: Version, ctx: CtxDep, caller: CallerDep
) -> VersionPublic:
    """One change: what each field was and became, and the whole entry after it."""
    return await entries.get_version(ctx, caller, entry_id, version)


search_router = APIRouter(tags=["search"])


@search_router.get("/search", response_model=SearchResults)
@ENTRY_READERS
async def search_entries(
    ctx: CtxDep,
    caller: CallerDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    kind: EntryKind | None = None,
    unit_id: str | None = None,
    matter_code: str | None = None,
    status: EntryStatus | None = None,
    include_invalid: bool = False,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    offset: Annotated[int, Query(ge=0, le=500)] = 0,
) -> SearchResults:
    """Chinese full-text search (jieba terms, BM25), best first."""
    flt = queries.search_filter(
        caller,
        ctx.clock.now(),
        include_invalid=include_invalid,
        status=status,
        kind=kind,
        unit_id=unit_id,
        matter_code=matter_code,
    )
    return await queries.search_entries(ctx, q, flt, limit=limit, offset=offset)


@search_router.post("/suggest", response_model=Suggestions)
@access(Role.OPERATOR, Role.AGENCY, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def suggest(data: SuggestRequest, ctx: CtxDep, caller: CallerDep) -> Suggestions:
    """The best valid entries for a ticket's text, each with its closest FAQ answer."""
    return await queries.suggest(ctx, caller, data)


@search_router.post("/search/reindex", response_model=ReindexResult)
@ADMINS
async def reindex(ctx: CtxDep, caller: CallerDep) -> ReindexResult:
    """Rebuild the whole index (admin; after a change to the word list)."""
    return await queries.reindex(ctx, caller)


requests_router = APIRouter(prefix="/update-requests", tags=["update requests"])


@requests_router.post("", status_code=status.HTTP_201_CREATED, response_model=UpdateRequestPublic)
@access(Role.AGENCY, Role.ADMIN, objects=(Objects.AGENCY, Objects.ADMIN))
async def create_request(
    data: UpdateRequestCreate, ctx: CtxDep, caller: CallerDep
) -> UpdateRequestPublic:
    """The agency asks a unit for a change (Art 17): due in 2 working days, or 1 day when
    about an emergency."""
    return await requests.create_request(ctx, caller, data)


@requests_router.get("", response_model=UpdateRequestsPublic)
@KNOWLEDGE_KEEPERS
async def list_requests(
    ctx: CtxDep,
    caller: CallerDep,
    unit_id: str | None = None,
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> UpdateRequestsPublic:
    """Requests by due time; ``overdue=true`` lists those past due (open or answered late)."""
    return await requests.list_requests(
        ctx, caller, unit_id=unit_id, status=status, overdue=overdue, limit=limit, offset=offset
    )


@requests_router.get("/{request_id}", response_model=UpdateRequestPublic)
@KNOWLEDGE_KEEPERS
async def get_request(request_id: str, ctx: CtxDep, caller: CallerDep) -> UpdateRequestPublic:
    return await requests.get_request(ctx, caller, request_id)


@requests_router.post("/{request_id}/answer", response_model=UpdateRequestPublic)
@KNOWLEDGE_KEEPERS
async def answer_request(
    request_id: str, data: UpdateRequestAnswer, ctx: CtxDep, caller: CallerDep
) -> UpdateRequestPublic:
    """The unit answers by linking the entry version its change made."""
    return await requests.answer_request(ctx, caller, request_id, data)


notices_router = APIRouter(prefix="/policy-notices", tags=["policy notices"])


@notices_router.post("", status_code=status.HTTP_201_CREATED, response_model=PolicyNoticePublic)
@KNOWLEDGE_KEEPERS
async def register_notice(
    data: PolicyNoticeCreate, ctx: CtxDep, caller: CallerDep
) -> PolicyNoticePublic:
    """A unit announces a policy change (Art 18); under 12 hours ahead it is flagged late."""
    return await notices.register_notice(ctx, caller, data)


@notices_router.get("", response_model=PolicyNoticesPublic)
@NOTICE_READERS
async def list_notices(
    ctx: CtxDep,
    caller: CallerDep,
    unit_id: str | None = None,
    late: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PolicyNoticesPublic:
    return await notices.list_notices(
        ctx, caller, unit_id=unit_id, late=late, limit=limit, offset=offset
    )


@notices_router.get("/units", response_model=UnitNoticeRecords)
@NOTICE_READERS
async def unit_records(
    ctx: CtxDep, caller: CallerDep, unit_id: str | None = None
) -> UnitNoticeRecords:
    """Per unit: notices registered, and how many late (counted against the unit)."""
    return await notices.unit_records(ctx, caller, unit_id)


@notices_router.get("/{notice_id}", response_model=PolicyNoticePublic)
@NOTICE_READERS
async def get_notice(notice_id: str, ctx: CtxDep, caller: CallerDep) -> PolicyNoticePublic:
    return await notices.get_notice(ctx, caller, notice_id)


policy_router = APIRouter(prefix="/policy", tags=["policy"])


@policy_router.get("", response_model=PolicyPublic)
@access(*EVERY_ROLE)
async def read_policy(ctx: CtxDep, caller: CallerDep) -> PolicyPublic:
    """The settings in force (reminder days, request periods, notice lead, screening lists)
    and every version."""
    return await policy.read_policy(ctx)


@policy_router.post("/versions", status_code=status.HTTP_201_CREATED, response_model=PolicyPublic)
@ADMINS
async def add_policy_version(
    data: PolicyVersionCreate, ctx: CtxDep, caller: CallerDep
) -> PolicyPublic:
    """Admin: a new version of the settings from its effective date."""
    return await policy.add_policy_version(ctx, caller, data)


cases_router = APIRouter(prefix="/cases", tags=["cases"])


@cases_router.post("", status_code=status.HTTP_201_CREATED, response_model=CasePublic)
@AGENCY_REVIEWERS
async def create_case(data: CaseCreate, ctx: CtxDep, caller: CallerDep) -> CasePublic:
    """The agency marks a completed ticket as a typical or excellent case (Art 25, 30); its
    texts are stored anonymised (personal data, names, addresses), as a draft."""
    return await cases.create_case(ctx, caller, data)


@cases_router.post("/{case_id}/review", response_model=CasePublic)
@AGENCY_REVIEWERS
async def review_case(case_id: str, data: CaseReview, ctx: CtxDep, caller: CallerDep) -> CasePublic:
    """Another agency reviewer publishes the draft, or returns it with a note."""
    return await cases.review_case(ctx, caller, case_id, data)


@cases_router.get("", response_model=CasesPublic)
@access(
    *cases.LIBRARY_READERS,
    objects=(Objects.OWN_UNIT, Objects.INDUSTRY, Objects.AGENCY, Objects.ADMIN),
)
async def case_library(
    ctx: CtxDep,
    caller: CallerDep,
    q: str | None = None,
    kind: str | None = None,
    status: str | None = None,
) -> CasesPublic:
    """The training library: published cases, searched like the knowledge base."""
    return await cases.library(ctx, caller, q=q, kind=kind, status=status)


@cases_router.get("/public", response_model=CasesPublic)
@public()
async def public_cases(ctx: CtxDep, caller: CallerDep, q: str | None = None) -> CasesPublic:
    """The public case page (Art 30): published cases, no link to any ticket or person."""
    return await cases.public_page(ctx, caller, q=q)


screening_router = APIRouter(prefix="/screening-overrules", tags=["screening"])


@screening_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ScreeningOverrulePublic
)
@AGENCY_REVIEWERS
async def overrule_finding(
    data: ScreeningOverruleCreate, ctx: CtxDep, caller: CallerDep
) -> ScreeningOverrulePublic:
    """An agency reviewer overrules a refused word as a false positive for one unit's
    texts, with the reason (Art 20); personal information is never overruled."""
    return await screening.overrule(ctx, caller, data)


@screening_router.get("", response_model=ScreeningOverrulesPublic)
@KNOWLEDGE_KEEPERS
async def list_overrules(
    ctx: CtxDep, caller: CallerDep, unit_id: str | None = None
) -> ScreeningOverrulesPublic:
    """Recorded overrules (a unit sees its own)."""
    return await screening.list_overrules(ctx, caller, unit_id)


routers = [
    entries_router,
    search_router,
    requests_router,
    notices_router,
    policy_router,
    screening_router,
    cases_router,
]
