"""Suggesting the matter from a ticket's words (catalog keywords and what past dispatches
taught), with a confidence. Segmentation happens outside; this scores. No I/O here."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.dispatch.domain.catalog import CatalogMatter

HISTORY_WEIGHT = 0.5  # a term learnt from past dispatches counts half a catalog keyword
PARTIAL_WEIGHT = 0.5  # a keyword found in the text but split differently by segmentation


@dataclass(frozen=True)
class KeywordIndex:
    """keyword → matters carrying it; built once per catalog version."""

    by_keyword: Mapping[str, frozenset[str]]
    names: Mapping[str, str]

    @classmethod
    def build(cls, matters: Iterable[CatalogMatter]) -> KeywordIndex:
        by_keyword: dict[str, set[str]] = defaultdict(set)
        names: dict[str, str] = {}
        for m in matters:
            if not m.active:
                continue
            names[m.code] = m.name
            for kw in m.keywords:
                if kw:
                    by_keyword[kw].add(m.code)
        return cls({k: frozenset(v) for k, v in by_keyword.items()}, names)


@dataclass(frozen=True)
class Scored:
    matter_code: str
    score: float


@dataclass(frozen=True)
class MatterSuggestion:
    matter_code: str | None
    confidence: float
    matched: tuple[str, ...] = ()
    alternatives: tuple[Scored, ...] = field(default_factory=tuple)


def score_matters(
    text: str,
    tokens: Sequence[str],
    index: KeywordIndex,
    history: Mapping[str, Mapping[str, int]],
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Each matter's score: its keywords in the text (a keyword shared by k matters counts
    1/k), its name, and terms past dispatches of it contained (``history``: term →
    matter → count)."""
    scores: dict[str, float] = defaultdict(float)
    matched: dict[str, list[str]] = defaultdict(list)
    token_set = set(tokens)
    for kw, codes in index.by_keyword.items():
        if kw in token_set:
            weight = 1.0
        elif kw in text:
            weight = PARTIAL_WEIGHT
        else:
            continue
        for code in codes:
            scores[code] += weight / len(codes)
            matched[code].append(kw)
    for code, name in index.names.items():
        if name in text:
            scores[code] += 1.0
            matched[code].append(name)
    for term in token_set:
        per_matter = history.get(term)
        if not per_matter:
            continue
        total = sum(per_matter.values())
        for code, n in per_matter.items():
            if code in index.names:
                scores[code] += HISTORY_WEIGHT * n / (total + 2)
    return dict(scores), dict(matched)


def confidence(best: float, runner_up: float) -> float:
    """High when the best matter is both well supported and clearly ahead: one distinct
    keyword alone gives 0.63, two give 0.86, a tie at most 0.5."""
    if best <= 0:
        return 0.0
    return round(best / (best + runner_up) * (1 - math.exp(-best)), 3)


def suggest_matter(
    text: str,
    tokens: Sequence[str],
    index: KeywordIndex,
    history: Mapping[str, Mapping[str, int]],
) -> MatterSuggestion:
    scores, matched = score_matters(text, tokens, index, history)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        return MatterSuggestion(None, 0.0)
    (best_code, best), runner_up = ranked[0], ranked[1][1] if len(ranked) > 1 else 0.0
    return MatterSuggestion(
        best_code,
        confidence(best, runner_up),
        tuple(matched.get(best_code, ())),
        tuple(Scored(c, round(s, 3)) for c, s in ranked[1:4]),
    )
