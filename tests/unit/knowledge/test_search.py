"""Chinese full-text search (jieba, BM25) on SQLite: relevance on a Chinese fixture set,
filters, visibility by role, the index in step with edits and withdrawals, and suggestions
for a ticket's text. The same assertions run on PostgreSQL in the integration tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.knowledge import tokens
from tests.unit.knowledge.conftest import ADMIN, AGENCY, HEPING, HEXI, OPERATOR, T0, Harness
from tests.unit.knowledge.corpus import CORPUS, QUERIES, TICKETS, corpus_entry

FROM, UNTIL = T0.isoformat(), (T0 + timedelta(days=150)).isoformat()


async def load(harness: Harness) -> dict[str, str]:
    ids = {}
    for key in CORPUS:
        r = await harness.call("POST", "/entries", AGENCY, corpus_entry(key, FROM, UNTIL))
        assert r.status_code == 201, r.text
        ids[key] = r.json()["entry_id"]
    return ids


def test_segmentation_finds_words_and_their_parts() -> None:
    terms = tokens.query_terms("天津市住房公积金提取")
    assert {"天津", "天津市", "公积金", "住房公积金", "提取"} <= set(terms)
    assert "的" not in tokens.query_terms("居民的暖气")


async def test_every_question_finds_its_entry_in_the_top_three(harness: Harness) -> None:
    ids = await load(harness)
    misses = []
    for question, key in QUERIES:
        r = await harness.call("GET", f"/search?q={question}&limit=3", OPERATOR)
        assert r.status_code == 200, r.text
        found = [hit["entry_id"] for hit in r.json()["data"]]
        if ids[key] not in found:
            misses.append((question, key, [h["title"] for h in r.json()["data"]]))
    assert not misses


async def test_results_are_ranked_best_first_with_scores_and_snippets(harness: Harness) -> None:
    ids = await load(harness)
    data = (await harness.call("GET", "/search?q=公积金", OPERATOR)).json()["data"]
    assert {d["entry_id"] for d in data[:2]} == {
        ids["housing_fund_withdrawal"],
        ids["housing_fund_loan"],
    }
    assert [d["score"] for d in data] == sorted((d["score"] for d in data), reverse=True)
    assert "公积金" in data[0]["snippet"]


async def test_filters_by_kind_unit_and_matter(harness: Harness) -> None:
    ids = await load(harness)
    q = "/search?q=办理"
    by_kind = (await harness.call("GET", f"{q}&kind=service_guide", OPERATOR)).json()["data"]
    assert by_kind and all(d["kind"] == "service_guide" for d in by_kind)
    by_unit = (await harness.call("GET", f"{q}&unit_id=city-public-security", OPERATOR)).json()
    assert by_unit["data"] and all(d["unit_id"] == "city-public-security" for d in by_unit["data"])
    by_matter = (await harness.call("GET", f"{q}&matter_code=TRAFFIC-001", OPERATOR)).json()
    assert [d["entry_id"] for d in by_matter["data"]] == [ids["ebike_registration"]]


async def test_the_index_follows_edits_and_withdrawals(harness: Harness) -> None:
    ids = await load(harness)
    elevator = ids["elevator"]
    r = await harness.call(
        "PATCH",
        f"/entries/{elevator}",
        AGENCY,
        {"title": "既有住宅增设升降设备", "body": "增设升降设备须业主同意。", "faq": []},
    )
    assert r.status_code == 200
    found = (await harness.call("GET", "/search?q=加装电梯", OPERATOR)).json()["data"]
    assert elevator not in [d["entry_id"] for d in found]
    found = (await harness.call("GET", "/search?q=升降设备", OPERATOR)).json()["data"]
    assert [d["entry_id"] for d in found] == [elevator]

    gas = ids["gas_leak"]
    await harness.call("POST", f"/entries/{gas}/withdraw", AGENCY, {"reason": "口径更新"})
    found = (await harness.call("GET", "/search?q=燃气泄漏", OPERATOR)).json()["data"]
    assert gas not in [d["entry_id"] for d in found]
    # the agency may still find it, marked as not valid
    r = await harness.call("GET", "/search?q=燃气泄漏&include_invalid=true", AGENCY)
    [hit] = [d for d in r.json()["data"] if d["entry_id"] == gas]
    assert hit["status"] == "withdrawn" and hit["valid"] is False


async def test_operators_find_only_valid_entries_units_also_their_own(harness: Harness) -> None:
    await harness.create(title="和平区加装电梯补贴草稿", publish=False)
    await harness.create(HEXI, title="河西区加装电梯补贴草稿", publish=False)
    await harness.create(title="和平区加装电梯补贴（下月起）", valid_from=T0 + timedelta(days=9))
    assert (await harness.call("GET", "/search?q=加装电梯补贴", OPERATOR)).json()["data"] == []
    r = await harness.call("GET", "/search?q=加装电梯&include_invalid=true", OPERATOR)
    assert r.status_code == 403
    own = (await harness.call("GET", "/search?q=加装电梯&include_invalid=true", HEPING)).json()
    assert sorted(d["title"] for d in own["data"]) == [
        "和平区加装电梯补贴草稿",
        "和平区加装电梯补贴（下月起）",
    ]
    every = (await harness.call("GET", "/search?q=加装电梯&include_invalid=true", ADMIN)).json()
    assert every["count"] == 3
    drafts = (await harness.call("GET", "/search?q=加装电梯&status=draft", ADMIN)).json()
    assert drafts["count"] == 2


async def test_nothing_matches_an_unknown_word(harness: Harness) -> None:
    await load(harness)
    assert (await harness.call("GET", "/search?q=量子计算机", OPERATOR)).json()["data"] == []


@pytest.mark.parametrize(("text", "matter", "key"), TICKETS)
async def test_suggest_returns_the_entry_that_answers_the_ticket(
    harness: Harness, text: str, matter: str | None, key: str
) -> None:
    ids = await load(harness)
    r = await harness.call(
        "POST", "/suggest", OPERATOR, {"text": text, "matter_code": matter, "limit": 3}
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data[0]["entry_id"] == ids[key]
    assert data[0]["answer"]["question"] == CORPUS[key][5][0][0]
    assert (await harness.call("POST", "/suggest", HEPING, {"text": text})).status_code == 403


async def test_a_rebuilt_index_ranks_like_the_incremental_one(harness: Harness) -> None:
    await load(harness)
    before = (await harness.call("GET", "/search?q=公积金提取", OPERATOR)).json()["data"]
    assert (await harness.call("POST", "/search/reindex", AGENCY)).status_code == 403
    r = await harness.call("POST", "/search/reindex", ADMIN)
    assert r.json()["entries"] == len(CORPUS)
    after = (await harness.call("GET", "/search?q=公积金提取", OPERATOR)).json()["data"]
    assert [(d["entry_id"], d["score"]) for d in after] == [
        (d["entry_id"], d["score"]) for d in before
    ]
