"""Dispatch service (派单): catalog, units, assignments, determinations, returns,
acceptance, replies and re-handling."""

from pathlib import Path

from services.dispatch.api import catalog_router, queue_router, router
from services.dispatch.handlers import (
    EVENT_HANDLERS,
    MANY_HANDLERS,
    catalog_scheduler,
    early_deadline_settler,
    seed_catalog,
    warm_up,
)
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="dispatch",
    title="12345 dispatch",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, queue_router, catalog_router],
    handlers=EVENT_HANDLERS,
    many_handlers=MANY_HANDLERS,
    on_start=[seed_catalog, warm_up],
    background=[catalog_scheduler, early_deadline_settler],
)
