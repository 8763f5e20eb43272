"""Bounded request parameters shared by every service. Every integer a client sends has a
minimum and a maximum (tests/unit/security/test_request_hygiene.py checks the merged
OpenAPI), so no value can overflow a database integer into a 500."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_OFFSET = 100_000  # deeper pages are a bulk export, not a list
MAX_ROW_ID = 2**62

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Year = Annotated[int, Path(ge=1900, le=2200)]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
