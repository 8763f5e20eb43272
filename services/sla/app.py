"""SLA service (时限): clocks, deadlines, the working-day calendar, overdue events."""

from pathlib import Path

from services.sla.api import router
from services.sla.handlers import (
    EVENT_HANDLERS,
    calendar_readiness,
    load_state,
    overdue_scanner,
)
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="sla",
    title="12345 SLA clocks",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    handlers=EVENT_HANDLERS,
    on_start=[load_state],
    background=[overdue_scanner],
    ready_checks=[calendar_readiness],
)
