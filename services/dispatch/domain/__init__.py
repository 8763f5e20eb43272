"""Dispatch's pure rules: the catalog and where a ticket goes (Art 7, 8), how an
assignment moves (accept, return, complete, re-handle — Art 10-14), determinations
(Art 8), suggestions and the policy settings. No I/O here."""

from services.dispatch.domain.assignment import (
    LEAD_REPLIES,
    OPEN_STATES,
    OWN_TICKETS,
    UNDISPATCHED,
    Assignment,
    State,
)
from services.dispatch.domain.catalog import (
    ART8_FUNCTIONAL_ONLY,
    CatalogEntry,
    CatalogMatter,
    Level,
    Route,
    Unit,
    check_dispatch_target,
    expand_catalog,
    route,
    unit_in_use,
    validate_catalog,
)
from services.dispatch.domain.determination import (
    CROSS_INDUSTRY_RULE,
    SAME_INDUSTRY_RULE,
    DeterminationKind,
    check_determination,
    kind_of,
)
from services.dispatch.domain.policy import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    Policy,
    validate_settings,
)
from services.dispatch.domain.returns import (
    ART10_1,
    ART10_2,
    ART10_3,
    ReturnRequest,
    ReturnStatus,
    check_approvable,
    check_rejection,
)
from services.dispatch.domain.suggestion import (
    KeywordIndex,
    MatterSuggestion,
    confidence,
    suggest_matter,
)

__all__ = [
    "ART10_1",
    "ART10_2",
    "ART10_3",
    "ART8_FUNCTIONAL_ONLY",
    "CROSS_INDUSTRY_RULE",
    "DEFAULT_POLICY",
    "DEFAULT_POLICY_EFFECTIVE_FROM",
    "LEAD_REPLIES",
    "OPEN_STATES",
    "OWN_TICKETS",
    "SAME_INDUSTRY_RULE",
    "UNDISPATCHED",
    "Assignment",
    "CatalogEntry",
    "CatalogMatter",
    "DeterminationKind",
    "KeywordIndex",
    "Level",
    "MatterSuggestion",
    "Policy",
    "ReturnRequest",
    "ReturnStatus",
    "Route",
    "State",
    "Unit",
    "check_approvable",
    "check_determination",
    "check_dispatch_target",
    "check_rejection",
    "confidence",
    "expand_catalog",
    "kind_of",
    "route",
    "suggest_matter",
    "unit_in_use",
    "validate_catalog",
    "validate_settings",
]
