"""What every page shares: the signed-in user, paging, form values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from console.app import PAGE_SIZE, api
from console.session import User, check_csrf, require_user

UserDep = Annotated[User, Depends(require_user)]
CsrfDep = Depends(check_csrf)


@dataclass(frozen=True)
class Page:
    """One page of a list: ``offset`` from the query string, the API's ``count``."""

    offset: int
    count: int
    limit: int = PAGE_SIZE

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + self.limit < self.count

    @property
    def prev_offset(self) -> int:
        return max(0, self.offset - self.limit)

    @property
    def next_offset(self) -> int:
        return self.offset + self.limit

    @property
    def number(self) -> int:
        return self.offset // self.limit + 1

    @property
    def pages(self) -> int:
        return max(1, (self.count + self.limit - 1) // self.limit)


def offset_of(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        return 0


def text(form: FormData, name: str) -> str | None:
    """A form field's text, stripped; ``None`` when empty."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def values(form: FormData) -> dict[str, Any]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def fetch_page(
    request: Request, user: User, path: str, **params: Any
) -> tuple[dict[str, Any], Page]:
    """One page of an API list (``data`` + ``count``) at the query string's offset."""
    offset = offset_of(request)
    found: dict[str, Any] = await api(request).call(
        "GET", path, user.token, params={**params, "limit": PAGE_SIZE, "offset": offset}
    )
    return found, Page(offset, found["count"])
