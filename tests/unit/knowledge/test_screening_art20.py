"""Art 20 beyond personal information: commercial secrets, privacy, sensitive and
security-relevant content are refused naming kind, words and position; an agency reviewer
overrules a false positive with a recorded reason, for that unit only."""

from __future__ import annotations

import pytest

from services.knowledge.domain import DEFAULT_SETTINGS
from shared.detectors import FindingKind, ScreeningRules, screen_text
from tests.unit.knowledge.conftest import AGENCY, HEPING, HEPING_HOUSING, HEXI, Harness, entry

RULES = ScreeningRules.of(
    DEFAULT_SETTINGS.public_contacts,
    DEFAULT_SETTINGS.classification_exempt_terms,
    DEFAULT_SETTINGS.sensitive_terms,
)


@pytest.mark.parametrize(
    ("text", "kind", "word"),
    [
        (
            "本报价方案涉及企业商业秘密，仅供审核使用。",
            FindingKind.COMMERCIAL_SECRET,
            "企业商业秘密",
        ),
        ("该项目投标底价为三百万元。", FindingKind.COMMERCIAL_SECRET, "投标底价"),
        ("申请人既往病史：高血压。", FindingKind.PERSONAL_PRIVACY, "既往病史"),
        ("当事人家庭住址为和平区某路3号。", FindingKind.PERSONAL_PRIVACY, "家庭住址为"),
        ("以下口径请勿外传。", FindingKind.SENSITIVE, "请勿外传"),
        ("活动当天警力部署如下：", FindingKind.SECURITY, "警力部署"),
    ],
)
def test_declared_secrets_privacy_and_security_details_are_found(
    text: str, kind: FindingKind, word: str
) -> None:
    found = screen_text("body", text, RULES)
    assert [(f.kind, f.excerpt, f.position) for f in found] == [(kind, word, text.index(word))]


def test_a_rule_about_secrets_is_not_refused() -> None:
    text = "涉及国家秘密、商业秘密、个人隐私的政府信息，行政机关不得公开。"
    assert screen_text("body", text, RULES) == []


async def test_an_entry_declaring_a_trade_secret_is_refused_naming_kind_word_position(
    harness: Harness,
) -> None:
    body = "本企业补贴申报材料涉及企业商业秘密，请按规定办理。"
    r = await harness.call("POST", "/entries", HEPING, entry(body=body))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["rule"] == "Art 20"
    [finding] = problem["findings"]
    assert finding["kind"] == "commercial_secret"
    assert finding["excerpt"] == "企业商业秘密"
    assert finding["position"] == body.index("企业商业秘密")
    assert "企业商业秘密" in problem["errors"][0]["reason"]


async def test_an_agency_overrule_lets_the_word_pass_for_that_unit_only(
    harness: Harness,
) -> None:
    body = "小区安保方案由业主大会表决通过后公示。"
    assert (await harness.call("POST", "/entries", HEPING, entry(body=body))).status_code == 422
    ruling = {
        "unit_id": HEPING_HOUSING,
        "kind": "security",
        "word": "安保方案",
        "reason": "物业服务合同中的公开事项，并非安保部署细节",
    }
    r = await harness.call("POST", "/screening-overrules", HEPING, ruling)
    assert r.status_code == 403  # the unit cannot overrule itself
    r = await harness.call("POST", "/screening-overrules", AGENCY, ruling)
    assert r.status_code == 201, r.text
    assert r.json()["decided_by"] == "agency" and r.json()["reason"] == ruling["reason"]
    assert (await harness.call("POST", "/entries", HEPING, entry(body=body))).status_code == 201
    # another unit's text is still screened
    assert (await harness.call("POST", "/entries", HEXI, entry(body=body))).status_code == 422
    listed = (await harness.call("GET", "/screening-overrules", HEPING)).json()
    assert listed["count"] == 1 and listed["data"][0]["word"] == "安保方案"


async def test_personal_information_cannot_be_overruled(harness: Harness) -> None:
    ruling = {"unit_id": HEPING_HOUSING, "kind": "mobile", "word": "13912345678", "reason": "公开"}
    r = await harness.call("POST", "/screening-overrules", AGENCY, ruling)
    assert r.status_code == 422
    assert "public_contacts" in r.json()["detail"] or "public_contacts" in r.text
