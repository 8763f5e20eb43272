"""Intake service (受理): registers requests from every channel."""

from pathlib import Path

from services.intake.api import matters_router, router
from services.intake.handlers import EVENT_HANDLERS, catalog_readiness
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="intake",
    title="12345 intake",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, matters_router],
    handlers=EVENT_HANDLERS,
    ready_checks=[catalog_readiness],
)
