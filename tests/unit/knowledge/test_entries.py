"""Entries through the API (embedded, SQLite): the elements of Art 16, caps by kind
(Art 19), ownership (Art 15, 20), versions, the life cycle, and what operators see."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import at
from tests.unit.knowledge.conftest import (
    ADMIN,
    AGENCY,
    HEPING,
    HEPING_HOUSING,
    HEXI,
    OPERATOR,
    T0,
    Harness,
    entry,
)


@pytest.mark.parametrize(
    ("kind", "months", "too_late"),
    [
        ("normative_document", 60, "2031-03-02 09:01"),
        ("service_guide", 12, "2027-03-02 09:01"),
        ("answer_script", 6, "2026-09-02 09:01"),
        ("interpretation", 12, "2027-03-02 09:01"),
        ("other", 12, "2027-03-02 09:01"),
    ],
)
async def test_validity_above_the_kinds_cap_is_refused_naming_the_cap(
    harness: Harness, kind: str, months: int, too_late: str
) -> None:
    r = await harness.call("POST", "/entries", HEPING, entry(kind=kind, valid_until=at(too_late)))
    assert r.status_code == 422, r.text
    assert r.json()["cap_months"] == months
    assert f"{months} months" in r.json()["detail"]
    just_in = at(too_late) - timedelta(minutes=1)
    r = await harness.call("POST", "/entries", HEPING, entry(kind=kind, valid_until=just_in))
    assert r.status_code == 201, r.text


async def test_an_entry_keeps_every_element_of_art_16(harness: Harness) -> None:
    created = await harness.create()
    r = await harness.call("GET", f"/entries/{created['entry_id']}", OPERATOR)
    assert r.status_code == 200
    got = r.json()
    for field in ("legal_basis", "scope", "applicable_subjects", "conditions", "faq"):
        assert got[field], field
    assert got["faq"][0]["question"] == "加装电梯需要多少业主同意？"
    assert got["unit_id"] == HEPING_HOUSING and got["status"] == "published" and got["valid"]


async def test_related_entries_must_exist(harness: Harness) -> None:
    r = await harness.call("POST", "/entries", HEPING, entry(related_entries=["no-such-entry"]))
    assert r.status_code == 422
    first = await harness.create()
    second = await harness.create(title="加装电梯补贴标准", related_entries=[first["entry_id"]])
    assert second["related_entries"] == [first["entry_id"]]


async def test_a_unit_creates_only_its_own_entries(harness: Harness) -> None:
    r = await harness.call("POST", "/entries", HEPING, entry(unit_id="120103-housing"))
    assert r.status_code == 403
    r = await harness.call("POST", "/entries", OPERATOR, entry(unit_id=HEPING_HOUSING))
    assert r.status_code == 403
    r = await harness.call("POST", "/entries", AGENCY, entry())
    assert r.status_code == 422  # the agency must name the owning unit


async def test_a_unit_edits_publishes_confirms_and_withdraws_only_its_own_entries(
    harness: Harness,
) -> None:
    own = await harness.create()
    path = f"/entries/{own['entry_id']}"
    for method, suffix, body in [
        ("PATCH", "", {"body": "河西区改写的正文"}),
        ("POST", "/confirm", {}),
        ("POST", "/withdraw", {"reason": "不是本单位的"}),
        ("POST", "/publish", None),
    ]:
        r = await harness.call(method, path + suffix, HEXI, body)
        assert r.status_code == 403, (suffix, r.text)
    r = await harness.call("PATCH", path, HEPING, {"body": "本单位修订后的正文"})
    assert r.status_code == 200 and r.json()["version"] == 2


async def test_every_change_keeps_a_version_that_can_be_listed_and_shown(
    harness: Harness,
) -> None:
    created = await harness.create()
    path = f"/entries/{created['entry_id']}"
    harness.clock.advance(timedelta(hours=1))
    r = await harness.call(
        "PATCH",
        path,
        HEPING,
        {"conditions": "满足规划、消防、结构安全要求，并完成公示", "note": "补充公示要求"},
    )
    assert r.status_code == 200
    harness.clock.advance(timedelta(hours=1))
    r = await harness.call("PATCH", path, HEPING, {"conditions": r.json()["conditions"]})
    assert r.json()["version"] == 2  # nothing changed: no new version
    r = await harness.call("POST", f"{path}/withdraw", AGENCY, {"reason": "政策已废止"})
    assert r.status_code == 200

    listed = (await harness.call("GET", f"{path}/versions", HEPING)).json()
    assert [(v["version"], v["change"], v["changed_by"]) for v in listed["data"]] == [
        (1, "created", "unit_heping_housing"),
        (2, "edited", "unit_heping_housing"),
        (3, "withdrawn", "agency"),
    ]
    shown = (await harness.call("GET", f"{path}/versions/2", AGENCY)).json()
    assert shown["changed_fields"] == ["conditions"]
    assert shown["diff"]["conditions"] == [
        "满足规划、消防、结构安全要求",
        "满足规划、消防、结构安全要求，并完成公示",
    ]
    assert shown["note"] == "补充公示要求"
    assert shown["changed_at"].startswith("2026-03-02T02:00")
    assert shown["snapshot"]["conditions"].endswith("并完成公示")
    assert (await harness.call("GET", f"{path}/versions", HEXI)).status_code == 403
    assert (await harness.call("GET", f"{path}/versions/9", HEPING)).status_code == 404


async def test_the_life_cycle_draft_published_withdrawn(harness: Harness) -> None:
    draft = await harness.create(publish=False)
    assert draft["status"] == "draft" and not draft["valid"]
    path = f"/entries/{draft['entry_id']}"
    assert (await harness.call("GET", path, OPERATOR)).status_code == 403
    assert (await harness.call("POST", f"{path}/confirm", HEPING, {})).status_code == 409
    published = (await harness.call("POST", f"{path}/publish", HEPING)).json()
    assert published["status"] == "published" and published["valid"]
    assert len(harness.emitted("knowledge.published", entry_id=draft["entry_id"])) == 0
    await harness.settle()
    assert len(harness.emitted("knowledge.published", entry_id=draft["entry_id"])) == 1
    r = await harness.call("POST", f"{path}/withdraw", HEPING, {"reason": "政策调整"})
    assert r.json()["status"] == "withdrawn"
    assert (await harness.call("POST", f"{path}/publish", HEPING)).status_code == 409
    assert (await harness.call("PATCH", path, HEPING, {"body": "改"})).status_code == 409
    await harness.settle()
    [withdrawn] = harness.emitted("knowledge.withdrawn", entry_id=draft["entry_id"])
    assert withdrawn.payload["reason"] == "政策调整"


async def test_a_new_entry_supersedes_the_old_one_when_published(harness: Harness) -> None:
    old = await harness.create(title="2025年加装电梯补贴标准")
    other_units = await harness.create(HEXI, title="河西区加装电梯补贴")
    r = await harness.call("POST", "/entries", HEPING, entry(supersedes=[other_units["entry_id"]]))
    assert r.status_code == 403
    new = await harness.create(title="2026年加装电梯补贴标准", supersedes=[old["entry_id"]])
    got = (await harness.call("GET", f"/entries/{old['entry_id']}", HEPING)).json()
    assert got["status"] == "superseded" and got["superseded_by"] == new["entry_id"]
    assert (await harness.call("GET", f"/entries/{old['entry_id']}", OPERATOR)).status_code == 403


async def test_operators_see_only_valid_entries_and_may_not_ask_for_more(
    harness: Harness,
) -> None:
    await harness.create(title="已生效的办事指南")
    await harness.create(title="下月生效的办事指南", valid_from=T0 + timedelta(days=30))
    await harness.create(title="草稿", publish=False)
    listed = (await harness.call("GET", "/entries", OPERATOR)).json()
    assert [e["title"] for e in listed["data"]] == ["已生效的办事指南"]
    r = await harness.call("GET", "/entries?include_invalid=true", OPERATOR)
    assert r.status_code == 403
    r = await harness.call("GET", "/entries?include_invalid=true", ADMIN)
    assert r.json()["count"] == 3
    # a unit sees everybody's valid entries and its own in any state, not others' drafts
    await harness.create(HEXI, title="河西区草稿", publish=False)
    r = await harness.call("GET", "/entries?include_invalid=true", HEPING)
    assert sorted(e["title"] for e in r.json()["data"]) == [
        "下月生效的办事指南",
        "已生效的办事指南",
        "草稿",
    ]
    r = await harness.call("GET", "/entries?include_invalid=true&unit_id=120103-housing", HEPING)
    assert r.status_code == 403


async def test_screening_refuses_the_whole_entry_and_saves_nothing(harness: Harness) -> None:
    bad = entry(
        body="如有疑问请联系经办人张伟，手机13812345678。",
        faq=[{"question": "如何退款？", "answer": "退款汇入银行卡6228480012345671。"}],
    )
    r = await harness.call("POST", "/entries", HEPING, bad)
    assert r.status_code == 422
    problem = r.json()
    assert [(f["kind"], f["field"], f["position"]) for f in problem["findings"]] == [
        ("mobile", "body", 15),
        ("bank_card", "faq[0].answer", 7),
    ]
    listed = await harness.call("GET", "/entries?include_invalid=true", ADMIN)
    assert listed.json()["count"] == 0
    r = await harness.call("GET", "/search?q=退款&include_invalid=true", ADMIN)
    assert r.json()["data"] == []
    await harness.settle()
    assert harness.seen == []


async def test_a_revision_is_screened_and_refused_without_a_partial_save(
    harness: Harness,
) -> None:
    created = await harness.create()
    path = f"/entries/{created['entry_id']}"
    r = await harness.call(
        "PATCH", path, HEPING, {"title": "新标题", "body": "【内部】仅限本单位掌握的口径"}
    )
    assert r.status_code == 422
    assert r.json()["findings"][0]["kind"] == "classification_marking"
    got = (await harness.call("GET", path, HEPING)).json()
    assert got["title"] == created["title"] and got["version"] == 1


async def test_public_desk_numbers_dates_and_amounts_are_accepted(harness: Harness) -> None:
    created = await harness.create(
        body=(
            "2026年3月1日起，加装电梯每台补贴20万元，咨询电话022-12345或12345热线。"
            "小区内部道路施工期间请注意安全。"
        )
    )
    assert created["status"] == "published"
