"""Knowledge service (知识库): entries, validity, update requests, policy notices,
screening, Chinese search."""

from pathlib import Path

from services.knowledge.api import routers
from services.knowledge.handlers import due_scanner, start
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="knowledge",
    title="12345 knowledge base",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    on_start=[start],
    background=[due_scanner],
)
