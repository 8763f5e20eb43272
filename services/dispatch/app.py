"""Dispatch service (派单): catalog, units, assignments, acceptance and replies."""

from pathlib import Path

from services.dispatch.api import catalog_router, router
from services.dispatch.handlers import EVENT_HANDLERS, seed_catalog
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="dispatch",
    title="12345 dispatch",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, catalog_router],
    handlers=EVENT_HANDLERS,
    on_start=[seed_catalog],
)
