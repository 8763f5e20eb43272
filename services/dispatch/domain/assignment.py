"""A ticket's assignment to a handling unit and how it moves (Art 8-14). No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from shared.calendar import shanghai_time
from shared.errors import Forbidden, IllegalTransition, InvalidInput

OWN_TICKETS = "Art 28: a unit acts only on its own tickets"
LEAD_REPLIES = "Art 8: the lead unit (主办) accepts, returns and replies; co-units add input"


class State(StrEnum):
    PENDING_DISPATCH = "pending_dispatch"  # manual queue
    PENDING_DETERMINATION = "pending_determination"  # 职责界定
    DISPATCHED = "dispatched"
    RETURN_REVIEW = "return_review"  # 退回审核
    ACCEPTED = "accepted"
    COMPLETED = "completed"


OPEN_STATES = (State.DISPATCHED, State.RETURN_REVIEW, State.ACCEPTED)
UNDISPATCHED = (State.PENDING_DISPATCH, State.PENDING_DETERMINATION)


@dataclass(frozen=True)
class Assignment:
    """A ticket's assignment to its lead unit (and co-units), and where it stands."""

    ticket_id: str
    state: State
    unit_id: str | None
    round: int = 1
    dispatched_at: datetime | None = None
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    dispatch_no: int = 0
    co_unit_ids: tuple[str, ...] = ()
    determined: bool = False

    def _check_lead(self, unit_id: str | None) -> None:
        if unit_id is None or unit_id == self.unit_id:
            return
        if unit_id in self.co_unit_ids:
            raise Forbidden(
                f"unit {unit_id} co-handles ticket {self.ticket_id}; only the lead unit "
                f"{self.unit_id} may do this",
                rule=LEAD_REPLIES,
            )
        raise Forbidden(f"ticket {self.ticket_id} is assigned to another unit", rule=OWN_TICKETS)

    def may_see(self, unit_id: str | None) -> bool:
        """Art 28: the lead and the co-units see the ticket; no other unit does."""
        return unit_id is not None and (unit_id == self.unit_id or unit_id in self.co_unit_ids)

    def dispatch(
        self,
        unit_id: str,
        *,
        at: datetime,
        co_unit_ids: Sequence[str] = (),
        determined: bool = False,
    ) -> Assignment:
        """派单: to the catalog's unit, an operator's choice or a determination's lead."""
        if self.state not in UNDISPATCHED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only a ticket waiting for "
                "dispatch or determination can be dispatched",
                rule="life cycle: pending_dispatch → dispatched",
            )
        return replace(
            self,
            state=State.DISPATCHED,
            unit_id=unit_id,
            co_unit_ids=tuple(co_unit_ids),
            determined=determined,
            dispatched_at=at,
            accepted_at=None,
            dispatch_no=self.dispatch_no + 1,
        )

    def dispatch_manually(
        self, unit_id: str, *, at: datetime, catalog_gap: bool = False
    ) -> Assignment:
        """By hand from the manual queue. ``catalog_gap``: the ticket waits for a
        determination only because the catalog names no unit for its matter, and the
        agency dispatches it with a recorded reason instead."""
        # Art 8: a disputed ticket gets its unit from a determination, not an operator.
        if self.state is State.PENDING_DETERMINATION and not catalog_gap:
            raise IllegalTransition(
                f"ticket {self.ticket_id} awaits a determination of responsibility",
                rule="Art 8: disputed tickets are dispatched by determination",
            )
        return self.dispatch(unit_id, at=at)

    def refer_for_determination(self) -> Assignment:
        """No clear responsibility: the ticket waits for a determination (Art 8)."""
        if self.state is not State.PENDING_DISPATCH:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only a ticket waiting for "
                "dispatch can be referred for determination",
                rule="life cycle: pending_dispatch → pending_determination",
            )
        return replace(self, state=State.PENDING_DETERMINATION)

    def accept(self, *, by_unit: str | None, at: datetime) -> Assignment:
        """接收 (Art 11). ``by_unit`` is None when the agency records it on the unit's behalf."""
        self._check_lead(by_unit)
        if self.state is not State.DISPATCHED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only a dispatched ticket "
                "can be accepted",
                rule="life cycle: dispatched → accepted",
            )
        return replace(self, state=State.ACCEPTED, accepted_at=at)

    def complete(self, *, by_unit: str | None, at: datetime, contacted_at: datetime) -> Assignment:
        """办结/答复 (Art 13); only the lead unit replies (Art 8)."""
        self._check_lead(by_unit)
        if self.state is not State.ACCEPTED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only an accepted ticket "
                "can be completed",
                rule="life cycle: accepted → completed",
            )
        assert self.accepted_at is not None
        # Art 13: no "closed before handled" — contact lies between acceptance and reply.
        if not self.accepted_at <= contacted_at <= at:
            raise InvalidInput(
                "contacted_at",
                "must lie between acceptance and the reply (Art 13)",
            )
        return replace(self, state=State.COMPLETED, completed_at=at)

    def request_return(
        self,
        *,
        by_unit: str | None,
        at: datetime,
        acceptance_deadline: datetime,
        reason: str,
        basis: str,
    ) -> Assignment:
        """退回 (Art 10): the assigned unit, before accepting, within the acceptance period,
        with a reason and a basis."""
        self._check_lead(by_unit)
        if not reason.strip():
            raise InvalidInput("reason", "a return needs a reason (Art 10)")
        if not basis.strip():
            raise InvalidInput("basis", "a return needs a basis (Art 10)")
        if self.round > 1:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is being re-handled; it goes back to the same unit",
                rule="Art 14: re-handling goes back to the same unit, no return",
            )
        if self.state is not State.DISPATCHED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; a return is requested only "
                "before the unit accepts",
                rule="Art 10: return only before acceptance",
            )
        if at > acceptance_deadline:
            raise IllegalTransition(
                f"the acceptance deadline {shanghai_time(acceptance_deadline)} has passed",
                rule="Art 10: return only within the acceptance period",
            )
        return replace(self, state=State.RETURN_REVIEW)

    def return_rejected(self) -> Assignment:
        """The unit continues; no clock changes (Art 10)."""
        self._check_in_review()
        return replace(self, state=State.DISPATCHED)

    def return_approved(self) -> Assignment:
        """Back to the manual queue until re-dispatched; every clock restarts (Art 10)."""
        self._check_in_review()
        return replace(
            self,
            state=State.PENDING_DISPATCH,
            unit_id=None,
            co_unit_ids=(),
            dispatched_at=None,
        )

    def _check_in_review(self) -> None:
        if self.state is not State.RETURN_REVIEW:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; no return is under review",
                rule="life cycle: return_review → dispatched | pending_dispatch",
            )

    def rehandle(self, *, at: datetime) -> Assignment:
        """再次办理 (Art 14): back to the same unit, once, as round 2."""
        if self.round > 1:
            raise IllegalTransition(
                f"ticket {self.ticket_id} was already re-handled",
                rule="Art 14: re-handling at most once",
            )
        if self.state is not State.COMPLETED:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; only a completed ticket is "
                "re-handled",
                rule="life cycle: completed → rehandling",
            )
        return replace(
            self,
            state=State.DISPATCHED,
            round=2,
            dispatched_at=at,
            accepted_at=None,
            completed_at=None,
            dispatch_no=self.dispatch_no + 1,
        )

    def check_co_unit_input(self, by_unit: str | None) -> None:
        """Co-units add input while the ticket is being handled (Art 8)."""
        if by_unit is None or by_unit not in self.co_unit_ids:
            raise Forbidden(
                f"only co-units of ticket {self.ticket_id} add input", rule=LEAD_REPLIES
            )
        if self.state not in OPEN_STATES:
            raise IllegalTransition(
                f"ticket {self.ticket_id} is {self.state.value}; input is taken while it is "
                "handled",
                rule="Art 8: co-units add input while the ticket is handled",
            )
