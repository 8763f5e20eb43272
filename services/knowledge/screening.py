"""Screening (Art 20): what may not enter the knowledge base is refused as a whole, naming
each finding. The detectors themselves live in ``shared.detectors``."""

from __future__ import annotations

from shared.detectors import Finding
from shared.errors import InvalidInput


def refuse_findings(findings: list[Finding]) -> None:
    """Art 20: refused as a whole, naming each finding (kind, field, position)."""
    if not findings:
        return
    first = findings[0]
    error = InvalidInput(
        first.field,
        "contains personal information or a classification marking (Art 20)",
        rule="Art 20",
        findings=[f.as_dict() for f in findings],
    )
    error.errors = [
        {"field": f.field, "reason": f"{f.kind.value} at position {f.position}"} for f in findings
    ]
    raise error
