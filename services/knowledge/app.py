"""Knowledge service (知识库): entries, validity, update requests, policy notices,
screening, Chinese search."""

from pathlib import Path

from services.knowledge.api import routers
from services.knowledge.handlers import due_scanner, start
from services.knowledge.handlers.cases import CASE_EVENT_HANDLERS
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="knowledge",
    title="12345 knowledge base",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    handlers=CASE_EVENT_HANDLERS,
    on_start=[start],
    background=[due_scanner],
)
