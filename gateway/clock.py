"""Embedded mode's one controllable clock: every service shares it, so it has one endpoint
here (``/api/v1/clock``) instead of one per service. Distributed mode has a clock per
process and keeps each service's ``/internal/clock``."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.auth import CallerDep
from shared.access import EVERY_ROLE, Objects, access
from shared.auth import Role
from shared.clock import Clock
from shared.service import ClockChange, ClockState, move_clock_state, read_clock_state


def clock_router(clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/api/v1/clock", tags=["clock"])

    @router.get("", response_model=ClockState)
    @access(*EVERY_ROLE)
    async def read_clock(caller: CallerDep) -> ClockState:
        """The platform's time, and whether it can be moved (``HOTLINE_CLOCK=controllable``)."""
        return read_clock_state(clock)

    @router.put("", response_model=ClockState)
    @access(Role.ADMIN, objects=(Objects.ADMIN,))
    async def move_clock(change: ClockChange, caller: CallerDep) -> ClockState:
        """Set or advance the shared clock (admin; test and drill environments only): every
        service's deadlines, scanners and timestamps follow it."""
        return move_clock_state(clock, caller, change)

    return router
