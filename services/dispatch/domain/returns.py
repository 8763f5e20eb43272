"""Returns (退回, Art 10): when the agency may not approve one. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.errors import IllegalTransition, InvalidInput

ART10_1 = "Art 10 (1): the catalog names this unit as responsible for the matter"
ART10_2 = "Art 10 (2): a return needs both a reason and a basis"
ART10_3 = "Art 10 (3): the unit was fixed by a determination"


class ReturnStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ReturnRequest:
    """退回申请."""

    ticket_id: str
    unit_id: str
    reason: str
    basis: str
    requested_at: datetime
    status: ReturnStatus = ReturnStatus.PENDING


def check_approvable(
    request: ReturnRequest, *, catalog_unit_id: str | None, determined: bool
) -> None:
    """The three cases in which Art 10 forbids approving a return, in the article's order."""
    if catalog_unit_id is not None and catalog_unit_id == request.unit_id:
        raise IllegalTransition(
            f"the dispatch catalog names {request.unit_id} as responsible for this matter "
            "in this district",
            rule=ART10_1,
        )
    if not request.reason.strip() or not request.basis.strip():
        raise IllegalTransition("the return lacks a reason or a basis", rule=ART10_2)
    if determined:
        raise IllegalTransition(
            f"{request.unit_id} was named by a determination of responsibility", rule=ART10_3
        )


def check_rejection(reason: str) -> None:
    # Art 10: a rejection is explained in writing.
    if not reason.strip():
        raise InvalidInput("reason", "a rejected return needs a written reason (Art 10)")
