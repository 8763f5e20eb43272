"""The console's pages, one router per role's area."""

from console.pages import (
    admin,
    agency,
    auth,
    evaluation,
    knowledge,
    operator,
    public,
    tickets,
    users,
)

ROUTERS = [
    auth.router,
    operator.router,
    tickets.router,
    agency.router,
    evaluation.router,
    knowledge.router,
    users.router,
    admin.router,
    public.router,
]
