"""The evaluation service's event consumers, commands and queries, one module per
concern: events (read models), revisits, exemptions, scores, supervision, monitoring,
social (supervisors' statistics and opinions), policy."""

from services.evaluation.handlers.common import prepare
from services.evaluation.handlers.events import EVENT_HANDLERS
from services.evaluation.handlers.many import MANY_HANDLERS, READ_AS

__all__ = ["EVENT_HANDLERS", "MANY_HANDLERS", "READ_AS", "prepare"]
