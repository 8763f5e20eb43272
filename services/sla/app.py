"""SLA service (时限): clocks, deadlines, the working-day calendar, warnings, overdue,
escalation and extensions."""

from pathlib import Path

from services.sla.api import admin_router, extension_router, router
from services.sla.handlers import EVENT_HANDLERS, MANY_HANDLERS, READ_AS
from services.sla.handlers.queries import calendar_readiness
from services.sla.handlers.scanner import scanner, sla_metrics
from services.sla.handlers.state import load_state
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="sla",
    title="12345 SLA clocks",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, extension_router, admin_router],
    handlers=EVENT_HANDLERS,
    many_handlers=MANY_HANDLERS,
    read_as=READ_AS,
    on_start=[load_state],
    background=[scanner],
    ready_checks=[calendar_readiness],
    metrics=[sla_metrics],
)
