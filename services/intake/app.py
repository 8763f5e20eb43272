"""Intake service (受理): registers requests from every channel."""

from pathlib import Path

from services.intake.api import audit_router, matters_router, policy_router, router
from services.intake.domain import warm_up_segmenter
from services.intake.handlers import (
    EVENT_HANDLERS,
    MANY_HANDLERS,
    catalog_readiness,
    load_policy,
)
from services.intake.handlers.registration import prune_idempotency_keys
from services.intake.handlers.words import clean_word_index
from services.intake.sealed import load_key_ring
from shared.service import ServiceContext, ServiceSpec


async def warm_up(ctx: ServiceContext) -> None:
    warm_up_segmenter()


SPEC = ServiceSpec(
    name="intake",
    title="12345 intake",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, matters_router, policy_router, audit_router],
    handlers=EVENT_HANDLERS,
    many_handlers=MANY_HANDLERS,
    on_start=[load_key_ring, load_policy, warm_up],
    background=[prune_idempotency_keys, clean_word_index],
    ready_checks=[catalog_readiness],
)
