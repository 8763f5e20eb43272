"""Screening (Art 20): what may not enter the knowledge base is refused as a whole, naming
each finding. The detectors themselves live in ``shared.detectors``."""

from __future__ import annotations

from shared.detectors import TERM_KINDS, Finding, FindingKind
from shared.errors import InvalidInput


def refuse_findings(findings: list[Finding]) -> None:
    """Art 20: refused as a whole, naming each finding (kind, field, position)."""
    if not findings:
        return
    first = findings[0]
    error = InvalidInput(
        first.field,
        "contains personal information, a classification marking, or secret, private, "
        "sensitive or security-relevant content (Art 20); an agency reviewer may overrule a "
        "false positive (POST /api/v1/knowledge/screening-overrules)",
        rule="Art 20",
        findings=[f.as_dict() for f in findings],
    )
    error.errors = [{"field": f.field, "reason": _reason(f)} for f in findings]
    raise error


def _reason(f: Finding) -> str:
    if f.kind in TERM_KINDS or f.kind is FindingKind.CLASSIFICATION_MARKING:
        return f"{f.kind.value} 「{f.excerpt}」 at position {f.position}"
    return f"{f.kind.value} at position {f.position}"
