"""Art 20: personal information and classification markings are found wherever they are,
and ordinary numbers and words are not refused — measured on realistic entry text."""

from __future__ import annotations

import random

import pytest

from services.knowledge.domain import DEFAULT_SETTINGS
from services.knowledge.screening import refuse_findings
from shared.detectors import (
    FindingKind,
    ScreeningRules,
    luhn_is_valid,
    mask_findings,
    mask_personal_data,
    resident_id_is_valid,
    screen_fields,
    screen_text,
)
from shared.errors import InvalidInput

RULES = ScreeningRules.of(
    DEFAULT_SETTINGS.public_contacts, DEFAULT_SETTINGS.classification_exempt_terms
)
# 17 digits + the GB 11643 check character, computed by hand from the standard's weights
VALID_IDS = ["11010519491231002X", "120101199003074516", "120103198511203028"]
LUHN_CARDS = ["6222021001123456789", "6217000250001234561", "6228480012345671"]


def kinds(text: str, rules: ScreeningRules = RULES) -> list[FindingKind]:
    return [f.kind for f in screen_text("body", text, rules)]


# ---- found --------------------------------------------------------------------------------


@pytest.mark.parametrize("number", VALID_IDS)
def test_a_resident_id_with_a_valid_check_digit_is_found(number: str) -> None:
    text = f"申请人王某，身份证号{number}，于2026年3月2日提交材料。"
    [finding] = screen_text("body", text, RULES)
    assert finding.kind is FindingKind.RESIDENT_ID
    assert finding.position == text.index(number)
    assert finding.length == 18
    assert number not in finding.excerpt  # the refusal does not repeat it


def test_a_resident_id_written_with_spaces_or_lowercase_x_is_found() -> None:
    assert kinds("证件号 110105 19491231 002X") == [FindingKind.RESIDENT_ID]
    assert kinds("证件号11010519491231002x") == [FindingKind.RESIDENT_ID]


def test_a_resident_id_with_a_wrong_check_digit_is_not_an_id() -> None:
    assert not resident_id_is_valid("110105194912310021")
    assert not resident_id_is_valid("120101199013074516")  # no 13th month
    assert kinds("编号110105194912310021") == []


@pytest.mark.parametrize(
    "text",
    [
        "联系人手机13812345678",
        "请拨打 138 1234 5678 联系",
        "电话：138-1234-5678",
        "电话+86 13912345678",
        "电话8613912345678。",
        "手机号１５９２２３３４４５５",  # full-width digits
    ],
)
def test_a_mainland_mobile_is_found_in_every_usual_writing(text: str) -> None:
    assert kinds(text) == [FindingKind.MOBILE]


@pytest.mark.parametrize("card", LUHN_CARDS)
def test_a_bank_card_passing_luhn_is_found(card: str) -> None:
    assert luhn_is_valid(card)
    assert kinds(f"退款请汇入银行卡{card}。") == [FindingKind.BANK_CARD]


def test_a_bank_card_in_groups_of_four_is_found() -> None:
    assert kinds("卡号 6228 4800 1234 5671") == [FindingKind.BANK_CARD]


def test_a_number_failing_luhn_is_not_a_card() -> None:
    assert not luhn_is_valid("6228480012345672")
    assert kinds("卡号6228480012345672") == []


@pytest.mark.parametrize(
    "address", ["zhangsan@163.com", "li.si_2026@qq.com", "wang-wu@tj.gov.cn", "ＡＢＣ＠qq.com"]
)
def test_an_email_address_is_found(address: str) -> None:
    assert kinds(f"材料可发送至{address}，三个工作日内回复。") == [FindingKind.EMAIL]


@pytest.mark.parametrize(
    "text",
    [
        "绝密★启用前",
        "本文件属机密，不得外传",
        "秘密★1年",
        "此件为工作秘密，请妥善保管",
        "内部资料 注意保存",
        "仅供内部使用",
        "【内部】关于供热投诉的答复口径",
        "以下为内部口径，不对外公开",
        "内部\n关于调整停车收费标准的说明",
        "内部★",
        "国家秘密★10年",  # a marking: the star makes it one even inside a category name
    ],
)
def test_a_classification_marking_is_found(text: str) -> None:
    assert FindingKind.CLASSIFICATION_MARKING in kinds(text)


def test_findings_name_field_and_position_and_nothing_is_missed() -> None:
    findings = screen_fields(
        {
            "title": "关于供热报修的答复口径",
            "body": "联系人13812345678，邮箱heat@163.com",
            "faq[0].answer": "【内部】按身份证120101199003074516核实",
        },
        RULES,
    )
    assert [(f.field, f.kind.value, f.position) for f in findings] == [
        ("body", "mobile", 3),
        ("body", "email", 17),
        ("faq[0].answer", "classification_marking", 1),
        ("faq[0].answer", "resident_id", 8),
    ]


def test_the_refusal_is_a_422_listing_every_finding() -> None:
    findings = screen_fields({"body": "手机13812345678，卡号6228480012345671"}, RULES)
    with pytest.raises(InvalidInput) as refused:
        refuse_findings(findings)
    body = refused.value.extra["findings"]
    assert [(f["kind"], f["field"], f["position"]) for f in body] == [
        ("mobile", "body", 2),
        ("bank_card", "body", 16),
    ]
    assert len(refused.value.errors) == 2


# ---- not falsely found --------------------------------------------------------------------

# Realistic knowledge-base text full of numbers and near-miss words, none of which is
# personal information or a marking.
ORDINARY = [
    "供热期为每年11月1日至次年3月31日，居民室内温度不低于18℃。",
    "2026年1月1日起，城乡居民医保个人缴费标准为每人每年400元。",
    "补贴金额为13800000000元的专项资金已下达。",  # an amount, not a mobile
    "发放住房租赁补贴，每户每月最高1500元，全年合计不超过18000元。",
    "依据《天津市物业管理条例》（2018年12月14日天津市第十七届人大常委会第七次会议修订）。",
    "详见津政办发〔2025〕12号文件，以及津住建发〔2024〕35号。",
    "统一社会信用代码：12120000401359321C。",
    "不动产权证号：津（2025）和平区不动产权第1012345号。",
    "邮政编码300041，办公地址：天津市和平区南京路1号。",
    "咨询电话：022-23456789，或拨打12345政务服务便民热线。",
    "市场监管投诉请拨打12315，社保咨询请拨打12333，环保举报请拨打12369。",
    "供电服务热线95598，燃气抢修电话96655。",
    "办理时间：工作日上午9:00—12:00，下午13:30—17:00。",
    "小区内部道路、停车位的管理由业主大会决定。",
    "房屋内部装修应当向物业服务企业申报，不得拆改承重墙。",
    "单位内部管理制度由用人单位依法制定并公示。",
    "依法不予公开涉及国家秘密、商业秘密、个人隐私的政府信息。",
    "经营者应当保守商业机密，不得泄露消费者个人信息。",
    "受理编号格式为KB-2026-000318，可凭编号查询进度。",
    "网址：https://zwfw.tj.gov.cn/ 在线办理，版本号V2.3.1。",
    "2025年度人均可支配收入为51234元，同比增长4.5%。",
    "工单编号20260302000123，处理时限7个工作日。",
    "坐标117.2008，39.0842；海拔3.5米。",
    "电动自行车登记需携带购车发票、合格证及本人有效身份证件原件。",
    "公积金贷款最高额度为单人60万元、双人80万元。",
    "停车收费标准：首小时5元，之后每小时2元，24小时内最高收费30元。",
    "热线受理后，承办单位应在1个工作日内接单，7个工作日内办结。",
    "2026-03-02 09:00至2026-03-06 17:00期间暂停受理。",
    "医保报销比例：一级医院90%，二级医院85%，三级医院80%。",
    "新生儿落户须在出生后一个月内办理，需提供出生医学证明。",
]


def test_realistic_text_has_no_false_positives() -> None:
    false_positives = {t: kinds(t) for t in ORDINARY if kinds(t)}
    rate = len(false_positives) / len(ORDINARY)
    assert rate == 0.0, f"false positives ({rate:.0%}): {false_positives}"


def test_a_public_service_desk_number_in_the_setting_is_not_refused() -> None:
    desk = "13820012345"  # a community service desk's published mobile
    assert kinds(f"社区服务站电话{desk}") == [FindingKind.MOBILE]
    rules = ScreeningRules.of([*DEFAULT_SETTINGS.public_contacts, desk], [])
    assert kinds(f"社区服务站电话{desk}", rules) == []
    assert kinds("社区服务站电话138-2001-2345", rules) == []


def test_without_the_exempt_terms_setting_a_category_name_counts_as_a_marking() -> None:
    text = "涉及国家秘密的信息不予公开"
    assert kinds(text) == []
    assert kinds(text, ScreeningRules.of([], [])) == [FindingKind.CLASSIFICATION_MARKING]


def test_random_digit_strings_rarely_look_like_personal_information() -> None:
    """Long reference numbers in running text (not mobiles, not 16–19 digits, not
    ID-shaped) never match; this measures that on generated strings."""
    import random

    rng = random.Random(12345)
    hits = 0
    total = 2000
    for _ in range(total):
        length = rng.choice([8, 10, 12, 13, 14, 15, 20, 21])
        number = str(rng.randint(1, 9)) + "".join(
            rng.choice("0123456789") for _ in range(length - 1)
        )
        hits += bool(kinds(f"流水号{number}已受理"))
    assert hits == 0


def test_masking_hides_personal_data_and_keeps_the_rest_in_place() -> None:
    text = "请联系张先生 13912345678，身份证 120101199003074516，地址和平区"
    masked = mask_personal_data(text)
    assert "13912345678" not in masked and "120101199003074516" not in masked
    assert len(masked) == len(text)
    assert masked.startswith("请联系张先生 ") and masked.endswith("，地址和平区")


@pytest.mark.parametrize(
    "text",
    [
        "电话１３９１２３４５６７８",  # full-width digits
        "电话139－1234－5678",  # full-width hyphens
        "电话１３９　１２３４　５６７８",  # ideographic spaces
        "身份证 120101 19900307 4516",
        "邮箱 zhang＠example.com",  # full-width @
        "邮箱 zhang@example.com",
        "卡号 6222021001123456789",
    ],
)
def test_masking_finds_personal_data_however_its_digits_and_at_are_written(text: str) -> None:
    assert mask_personal_data(text) != text


def test_masking_a_text_without_a_long_number_or_at_returns_it_without_screening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def screened(*args: object) -> object:
        raise AssertionError("screened a text that cannot hold personal data")

    monkeypatch.setattr("shared.detectors.screen_text", screened)
    text = "24号楼2单元门口路灯不亮，18点27分以后出行很不方便，3天了，请尽快处理"
    assert mask_personal_data(text) is text


def test_masking_with_its_quick_check_masks_what_screening_every_text_masks() -> None:
    """Numbers written every way (full-width digits, each separator or none, cut short)
    amid text: the quick check never lets personal data through unmasked."""
    rng = random.Random(2026)
    separators = ["-", " ", "\uff0d", "\u3000", "  ", "号"]
    numbers = ["13912345678", "8613912345678", *VALID_IDS, *LUHN_CARDS, "zhang@example.com"]
    wide = str.maketrans("0123456789@", "０１２３４５６７８９＠")
    masked = 0
    for _ in range(3000):
        number = rng.choice(numbers)[: rng.choice([None, None, None, 10, 11, 12])]
        # separators where a mobile (3-4-4), an ID (6-8-4) or a card (4-4-4-4) has them,
        # or anywhere
        cuts = rng.choice([{3, 7}, {6, 14}, {4, 8, 12, 16}, set(range(len(number)))])
        written = "".join(
            (rng.choice(separators) if i in cuts and rng.random() < 0.7 else "") + ch
            for i, ch in enumerate(number)
        )
        if rng.random() < 0.3:
            written = written.translate(wide)
        text = (
            rng.choice(["电话", "卡号 ", "", "3号楼"]) + written + rng.choice(["，", "元", "1", ""])
        )
        found = [
            f
            for f in screen_text("text", text, ScreeningRules())
            if f.kind is not FindingKind.CLASSIFICATION_MARKING
        ]
        assert mask_personal_data(text) == mask_findings(text, found), text
        masked += bool(found)
    assert masked > 100  # and personal data often enough to tell
