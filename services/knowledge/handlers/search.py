"""Chinese full-text search: BM25 over jieba terms, written in the same transaction as
the entry it indexes, and the same SQL on SQLite and PostgreSQL.

Tables: ``search_docs`` (one row per entry: weighted length and its terms as
``term:tf:impact`` triples), ``search_postings`` (term, impact, doc) keyed in that order, so
a term's best documents are the first rows of one index range, ``search_terms`` (document
frequency) and ``search_stats`` (number of entries, total length). ``impact`` is the term's
BM25 part, tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl)), ×1000, computed when the entry is
indexed. Withdrawn, expired and draft entries stay indexed; visibility is a filter, so the
agency and owners still find them.

A query takes the ``PER_TERM`` highest-impact documents of each query term (an index range
read, however common the term), ranks that union by Σ idf·impact, keeps the best
``CANDIDATES`` that pass the filters, and scores those exactly with BM25 over every query
term (avgdl as it is now). Should filters leave too few, the terms' whole postings run
again with the filters joined in (exact, slower, only for narrow filters)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from typing import Any

from sqlalchemy import (
    Float,
    Select,
    and_,
    bindparam,
    case,
    cast,
    delete,
    desc,
    exists,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.knowledge import tokens
from services.knowledge.domain import EntryKind, EntryStatus, is_valid
from services.knowledge.models import (
    entries,
    entry_matters,
    search_docs,
    search_postings,
    search_stats,
    search_terms,
)
from shared.db import insert_ignoring_duplicates

K1 = 1.2
B = 0.75
PER_TERM = 200
CANDIDATES = 100
MAX_QUERY_TERMS = 16  # a ticket's text is cut down to its most telling terms
_CHUNK = 5000
_PARALLEL_FROM = 5000  # entries; below this segmentation runs in-process


# ---- what gets indexed ------------------------------------------------------------------


def entry_parts(entry: Mapping[str, Any]) -> list[tuple[str | None, int]]:
    parts: list[tuple[str | None, int]] = [(entry.get("title"), tokens.TITLE_WEIGHT)]
    for field in ("body", "legal_basis", "scope", "applicable_subjects", "conditions"):
        parts.append((entry.get(field), 1))
    for item in entry.get("faq") or []:
        parts.append((item["question"], tokens.QUESTION_WEIGHT))
        parts.append((item["answer"], 1))
    return parts


def entry_terms(entry: Mapping[str, Any]) -> Counter[str]:
    return tokens.weighted_terms(entry_parts(entry))


def _segment_chunk(chunk: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, int]]]:
    """Worker-process entry point (top level so it pickles)."""
    return [(e["entry_id"], dict(entry_terms(e))) for e in chunk]


# ---- keeping the index in step ----------------------------------------------------------


def impact(tf: int, dl: int, avgdl: float) -> float:
    """The BM25 share of one term in one document, before idf."""
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))


def _quantised(tf: int, dl: int, avgdl: float) -> int:
    return round(impact(tf, dl, avgdl) * 1000)


def _encode(counts: Mapping[str, int], impacts: Mapping[str, int]) -> str:
    return " ".join(f"{t}:{counts[t]}:{impacts[t]}" for t in sorted(counts))


def _decode(terms: str) -> dict[str, tuple[int, int]]:
    out = {}
    for item in terms.split():
        term, tf, imp = item.rsplit(":", 2)
        out[term] = (int(tf), int(imp))
    return out


async def index_entry(conn: AsyncConnection, entry: Mapping[str, Any]) -> None:
    """(Re)index one entry inside the caller's transaction."""
    counts = entry_terms(entry)
    length = sum(counts.values())
    stats = (await conn.execute(select(search_stats).where(search_stats.c.id == 1))).one()
    doc = (
        await conn.execute(select(search_docs).where(search_docs.c.entry_id == entry["entry_id"]))
    ).first()
    docs_after = stats.doc_count + (doc is None)
    total_after = stats.total_length + length - (doc.length if doc is not None else 0)
    avgdl = max(total_after / docs_after, 1.0) if docs_after else max(length, 1)
    impacts = {t: _quantised(tf, length, avgdl) for t, tf in counts.items()}
    encoded = _encode(counts, impacts)
    if doc is None:
        doc_id = (
            await conn.execute(
                insert(search_docs)
                .values(entry_id=entry["entry_id"], length=length, terms=encoded)
                .returning(search_docs.c.doc_id)
            )
        ).scalar_one()
        old: dict[str, tuple[int, int]] = {}
        doc_delta, length_delta = 1, length
    else:
        doc_id = doc.doc_id
        old = _decode(doc.terms)
        if old:
            await conn.execute(
                delete(search_postings).where(
                    search_postings.c.term == bindparam("t"),
                    search_postings.c.impact == bindparam("i"),
                    search_postings.c.doc_id == doc_id,
                ),
                [{"t": t, "i": imp} for t, (_, imp) in sorted(old.items())],
            )
        await conn.execute(
            update(search_docs)
            .where(search_docs.c.doc_id == doc_id)
            .values(length=length, terms=encoded)
        )
        doc_delta, length_delta = 0, length - doc.length
    if counts:
        await conn.execute(
            insert(search_postings),
            [{"term": t, "impact": impacts[t], "doc_id": doc_id} for t in sorted(counts)],
        )
    await _adjust_df(conn, sorted(counts.keys() - old.keys()), +1)
    await _adjust_df(conn, sorted(old.keys() - counts.keys()), -1)
    await _adjust_stats(conn, doc_delta, length_delta)


async def _adjust_df(conn: AsyncConnection, terms: list[str], delta: int) -> None:
    # Sorted terms: two concurrent edits lock the rows in the same order (no deadlock).
    if not terms:
        return
    if delta > 0:
        await conn.execute(
            insert_ignoring_duplicates(conn, search_terms), [{"term": t, "df": 0} for t in terms]
        )
    for chunk in _chunks(terms, 500):
        await conn.execute(
            update(search_terms)
            .where(search_terms.c.term.in_(chunk))
            .values(df=search_terms.c.df + delta)
        )


async def _adjust_stats(conn: AsyncConnection, docs: int, length: int) -> None:
    if docs or length:
        await conn.execute(
            update(search_stats)
            .where(search_stats.c.id == 1)
            .values(
                doc_count=search_stats.c.doc_count + docs,
                total_length=search_stats.c.total_length + length,
            )
        )


async def ensure_indexed(conn: AsyncConnection) -> int:
    """Index entries that have no index row (written before the index existed)."""
    missing = (
        await conn.execute(
            select(entries).where(~exists().where(search_docs.c.entry_id == entries.c.entry_id))
        )
    ).all()
    for row in missing:
        await index_entry(conn, dict(row._mapping))
    return len(missing)


async def rebuild_index(conn: AsyncConnection, *, workers: int | None = None) -> dict[str, Any]:
    """Drop and rebuild the whole index in one transaction (after a dictionary change,
    and for the benchmark). Segmentation runs in worker processes for large bases."""
    started = time.perf_counter()
    columns = [entries.c.entry_id, *(entries.c[f] for f in _INDEXED_FIELDS)]
    rows = [dict(r._mapping) for r in (await conn.execute(select(*columns))).all()]
    segmented = await _segment_all(rows, workers)
    for table in (search_postings, search_docs, search_terms):
        await conn.execute(delete(table))
    total = sum(sum(counts.values()) for _, counts in segmented)
    avgdl = max(total / len(segmented), 1.0) if segmented else 1.0
    docs: list[dict[str, Any]] = []
    postings: list[tuple[str, int, int]] = []
    df: Counter[str] = Counter()
    for doc_id, (entry_id, counts) in enumerate(segmented, start=1):
        length = sum(counts.values())
        impacts = {t: _quantised(tf, length, avgdl) for t, tf in counts.items()}
        docs.append(
            {
                "doc_id": doc_id,
                "entry_id": entry_id,
                "length": length,
                "terms": _encode(counts, impacts),
            }
        )
        postings.extend((t, impacts[t], doc_id) for t in counts)
        df.update(counts.keys())
    await bulk_insert(conn, search_docs, docs)
    await bulk_insert(conn, search_terms, [{"term": t, "df": n} for t, n in df.items()])
    await bulk_insert(
        conn,
        search_postings,
        [{"term": t, "impact": i, "doc_id": d} for t, i, d in postings],
        tuples=postings,
    )
    await conn.execute(
        update(search_stats)
        .where(search_stats.c.id == 1)
        .values(doc_count=len(docs), total_length=total)
    )
    if conn.dialect.name == "postgresql":
        # the doc_id sequence continues after the rebuilt ids
        await conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('search_docs', 'doc_id'), "
            "GREATEST((SELECT max(doc_id) FROM search_docs), 1))"
        )
    return {
        "entries": len(docs),
        "postings": len(postings),
        "seconds": time.perf_counter() - started,
    }


_INDEXED_FIELDS = (
    "title",
    "body",
    "legal_basis",
    "scope",
    "applicable_subjects",
    "conditions",
    "faq",
)


async def _segment_all(
    rows: list[dict[str, Any]], workers: int | None
) -> list[tuple[str, dict[str, int]]]:
    if len(rows) < _PARALLEL_FROM:
        return _segment_chunk(rows)
    chunks = list(_chunks(rows, _CHUNK))
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1, mp_context=get_context("spawn")
    ) as pool:
        parts = await asyncio.gather(
            *(loop.run_in_executor(pool, _segment_chunk, c) for c in chunks)
        )
    return [item for part in parts for item in part]


async def bulk_insert(
    conn: AsyncConnection,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    tuples: Sequence[tuple[Any, ...]] | None = None,
) -> None:
    """Many rows at once: COPY on PostgreSQL, batched INSERTs elsewhere."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        names = list(rows[0])
        records = tuples if tuples is not None else [tuple(r[n] for n in names) for r in rows]
        schema = await driver.fetchval("SELECT current_schema()")
        await driver.copy_records_to_table(
            table.name, records=records, columns=names, schema_name=schema
        )
        return
    for chunk in _chunks(rows, 20_000):
        await conn.execute(insert(table), chunk)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---- querying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFilter:
    """Which entries may come back. ``own_unit`` widens ``valid_only`` for a unit user:
    its own entries in any state, everybody else's only while valid."""

    now: datetime
    valid_only: bool = True
    own_unit: str | None = None
    statuses: tuple[EntryStatus, ...] = ()
    kind: EntryKind | None = None
    unit_id: str | None = None
    matter_code: str | None = None
    valid_until_before: datetime | None = None

    def clauses(self) -> list[Any]:
        e = entries.c
        valid = and_(
            e.status == EntryStatus.PUBLISHED.value,
            e.valid_from <= self.now,
            e.valid_until > self.now,
        )
        out: list[Any] = []
        if self.valid_only and self.own_unit:
            out.append(or_(valid, e.unit_id == self.own_unit))
        elif self.valid_only:
            out.append(valid)
        if self.statuses:
            out.append(e.status.in_([s.value for s in self.statuses]))
        if self.kind is not None:
            out.append(e.kind == self.kind.value)
        if self.unit_id is not None:
            out.append(e.unit_id == self.unit_id)
        if self.matter_code is not None:
            out.append(
                exists().where(
                    entry_matters.c.entry_id == e.entry_id,
                    entry_matters.c.matter_code == self.matter_code,
                )
            )
        if self.valid_until_before is not None:
            out.append(e.valid_until < self.valid_until_before)
        return out


@dataclass(frozen=True)
class Hit:
    entry: Mapping[str, Any]
    score: float


@dataclass(frozen=True)
class _Stats:
    docs: int
    avgdl: float
    df: dict[str, int]

    def idf(self, term: str) -> float:
        n = self.df[term]
        return math.log(1 + (self.docs - n + 0.5) / (n + 0.5))


async def _stats(conn: AsyncConnection, terms: list[str]) -> _Stats | None:
    row = (await conn.execute(select(search_stats).where(search_stats.c.id == 1))).first()
    if row is None or row.doc_count <= 0 or not terms:
        return None
    df = {
        r.term: r.df
        for r in (
            await conn.execute(
                select(search_terms.c.term, search_terms.c.df).where(
                    search_terms.c.term.in_(terms), search_terms.c.df > 0
                )
            )
        ).all()
    }
    if not df:
        return None
    return _Stats(row.doc_count, max(row.total_length / row.doc_count, 1.0), df)


def _float(value: float) -> Any:
    # typed parameter: the SQL text depends only on the number of terms (cached plans)
    return cast(bindparam(None, value, type_=Float), Float)


def _best_per_term(stats: _Stats, terms: list[str], pool: int) -> Select[Any]:
    """Σ idf·impact over the union of each term's ``PER_TERM`` best documents."""
    p = search_postings.c
    members = []
    for term in terms:
        best = (
            select(p.doc_id, p.impact)
            .where(p.term == term)
            .order_by(p.impact.desc(), p.doc_id.desc())
            .limit(PER_TERM)
            .subquery()
        )
        members.append(select(best.c.doc_id, (best.c.impact * _float(stats.idf(term))).label("w")))
    union = union_all(*members).subquery() if len(members) > 1 else members[0].subquery()
    score = func.sum(union.c.w).label("score")
    return (
        select(union.c.doc_id, score)
        .group_by(union.c.doc_id)
        .order_by(desc("score"), union.c.doc_id)
        .limit(pool)
    )


def _filtered(stats: _Stats, terms: list[str], pool: int, flt: SearchFilter) -> Select[Any]:
    """Every posting of the terms, filters joined in: exact, for narrow filters."""
    p = search_postings.c
    idf = case({t: _float(stats.idf(t)) for t in terms}, value=p.term, else_=_float(0.0))
    score = func.sum(p.impact * idf).label("score")
    return (
        select(p.doc_id, score)
        .join(search_docs, search_docs.c.doc_id == p.doc_id)
        .join(entries, entries.c.entry_id == search_docs.c.entry_id)
        .where(p.term.in_(terms), *flt.clauses())
        .group_by(p.doc_id)
        .order_by(desc("score"), p.doc_id)
        .limit(pool)
    )


async def search(
    conn: AsyncConnection,
    terms: list[str],
    flt: SearchFilter,
    *,
    limit: int = 10,
    offset: int = 0,
) -> list[Hit]:
    """The best entries for ``terms`` that pass ``flt``, best first."""
    stats = await _stats(conn, terms)
    if stats is None:
        return []
    terms = [t for t in terms if t in stats.df]
    want = offset + limit
    pool = max(CANDIDATES, want * 2)
    candidates = (await conn.execute(_best_per_term(stats, terms, pool))).all()
    docs = await _passing(conn, [r.doc_id for r in candidates], flt)
    saturated = any(stats.df[t] > PER_TERM for t in terms)
    if len(docs) < want and saturated:
        candidates = (await conn.execute(_filtered(stats, terms, pool, flt))).all()
        docs = await _passing(conn, [r.doc_id for r in candidates], flt)
    scores = {
        doc_id: sum(
            stats.idf(t) * impact(tf, length, stats.avgdl) for t, tf in _tfs(encoded, terms).items()
        )
        for doc_id, (length, encoded) in docs.items()
    }
    ranked = sorted(scores.items(), key=lambda item: (-round(item[1], 9), item[0]))[offset:want]
    rows = await _entries_of(conn, [d for d, _ in ranked])
    return [Hit(rows[d], s) for d, s in ranked]


def _tfs(encoded: str, terms: list[str]) -> dict[str, int]:
    """The query terms' frequencies in a document, read from its term list."""
    found = {}
    padded = f" {encoded}"
    for term in terms:
        at = padded.find(f" {term}:")
        if at >= 0:
            tf = padded[at + len(term) + 2 :].split(":", 1)[0]
            found[term] = int(tf)
    return found


async def _passing(
    conn: AsyncConnection, doc_ids: list[int], flt: SearchFilter
) -> dict[int, tuple[int, str]]:
    """The candidates the filters let through, with their lengths and term lists."""
    if not doc_ids:
        return {}
    stmt = (
        select(search_docs.c.doc_id, search_docs.c.length, search_docs.c.terms)
        .join(entries, entries.c.entry_id == search_docs.c.entry_id)
        .where(search_docs.c.doc_id.in_(doc_ids), *flt.clauses())
    )
    return {r.doc_id: (r.length, r.terms) for r in (await conn.execute(stmt)).all()}


async def _entries_of(conn: AsyncConnection, doc_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The whole entries of one page of results."""
    if not doc_ids:
        return {}
    stmt = (
        select(search_docs.c.doc_id, entries)
        .join(entries, entries.c.entry_id == search_docs.c.entry_id)
        .where(search_docs.c.doc_id.in_(doc_ids))
    )
    return {r.doc_id: dict(r._mapping) for r in (await conn.execute(stmt)).all()}


async def selective_terms(conn: AsyncConnection, text: str) -> list[str]:
    """A ticket's text as a query: its known terms, the rarest ``MAX_QUERY_TERMS``."""
    terms = tokens.query_terms(text)
    stats = await _stats(conn, terms)
    if stats is None:
        return []
    known = [t for t in terms if t in stats.df]
    return sorted(known, key=lambda t: (stats.df[t], t))[:MAX_QUERY_TERMS]


async def idf_of(conn: AsyncConnection, terms: list[str]) -> dict[str, float]:
    stats = await _stats(conn, terms)
    return {} if stats is None else {t: stats.idf(t) for t in terms if t in stats.df}


def snippet(entry: Mapping[str, Any], terms: list[str], width: int = 80) -> str:
    """A stretch of the body around the first query term it contains."""
    body: str = entry.get("body") or ""
    lowered = body.lower()
    positions = [p for p in (lowered.find(t) for t in terms) if p >= 0]
    if not positions:
        return body[:width]
    start = max(min(positions) - width // 4, 0)
    return body[start : start + width]


def valid_now(entry: Mapping[str, Any], now: datetime) -> bool:
    return is_valid(entry["status"], entry["valid_from"], entry["valid_until"], now)
