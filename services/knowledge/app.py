"""Knowledge service (知识库): entries, validity, search."""

from pathlib import Path

from services.knowledge.api import router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="knowledge",
    title="12345 knowledge base",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
)
