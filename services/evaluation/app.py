"""Evaluation service (评价): revisits, ratings, scores, supervision."""

from pathlib import Path

from services.evaluation.api import router
from services.evaluation.handlers import EVENT_HANDLERS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="evaluation",
    title="12345 evaluation",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    handlers=EVENT_HANDLERS,
)
