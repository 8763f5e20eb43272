"""Evaluation service (评价): revisits and re-handling, exemptions, unit scores,
supervision, monitoring and social supervisors (Art 14, 21-24, 27)."""

from pathlib import Path

from services.evaluation.api import ROUTERS
from services.evaluation.handlers import EVENT_HANDLERS, MANY_HANDLERS, READ_AS, prepare
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="evaluation",
    title="12345 evaluation",
    migrations=Path(__file__).parent / "migrations",
    routers=ROUTERS,
    handlers=EVENT_HANDLERS,
    many_handlers=MANY_HANDLERS,
    read_as=READ_AS,
    on_start=[prepare],
)
