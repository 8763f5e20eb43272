"""Intake's pure rules, without I/O."""

from __future__ import annotations

import random
from datetime import timedelta

import jieba
import pytest

from services.intake import domain
from services.intake.domain import (
    DEFAULT_POLICY,
    DEFAULT_POLICY_EFFECTIVE_FROM,
    STATUS_AFTER_EVENT,
    STATUS_LABELS,
    STOPWORDS,
    IntakePolicy,
    SensitiveKeywords,
    Status,
    calendar_window,
    check_answer_on_the_spot,
    check_attachments,
    check_call_rating,
    mask_name,
    query_terms,
    same_phone,
    search_terms,
    sensitive_keywords_in,
)
from shared.errors import IllegalTransition, InvalidInput
from shared.events import EVENT_TYPES

DEFAULT = IntakePolicy.from_settings(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
KEYWORDS = DEFAULT.sensitive_keywords


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ("我实在活不下去了", ["活不下去"]),
        ("再不解决我就自 杀", ["自杀"]),  # spacing does not hide a keyword
        ("他说要自，杀", ["自杀"]),  # nor punctuation
        ("邻居扬言要砍人，还说要放火", ["砍人", "放火"]),
        ("明天业主集体上访，准备拉横幅", ["集体上访", "拉横幅"]),
        ("跳楼跳楼跳楼", ["跳楼"]),  # once each
        ("小区停水三天了", []),
        ("咨询养老保险缴费", []),
    ],
)
def test_sensitive_keywords_are_found_in_the_content(content: str, found: list[str]) -> None:
    assert sorted(sensitive_keywords_in(content, KEYWORDS)) == sorted(found)


def test_keywords_are_matched_case_insensitively() -> None:
    assert sensitive_keywords_in("I will KILL", {"violence": ["kill"]}) == ["kill"]


def _keywords_one_by_one(content: str, keywords: dict[str, list[str]]) -> list[str]:
    """The rule as first written: every word of the policy looked for in turn."""
    text = domain._squeeze(content)
    found: list[str] = []
    for words in keywords.values():
        for word in words:
            squeezed = domain._squeeze(word)
            if squeezed and squeezed in text and word not in found:
                found.append(word)
    return found


NESTED = {
    "mass_incident": ["集体上访", "上访"],
    "violence": ["放火", "砍人"],
    "self_harm": ["上访", "，"],
}


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ("明天集体上访", ["集体上访", "上访"]),  # a keyword inside another: both
        ("要去上访", ["上访"]),
        ("砍人之后放火", ["放火", "砍人"]),  # in the policy's order, not the content's
        ("上访上访，再上访", ["上访"]),  # a word in two categories: once, where it comes first
        ("小区停水，三天了", []),  # a keyword of punctuation only is never found
    ],
)
def test_keywords_inside_others_are_each_found_in_policy_order(
    content: str, found: list[str]
) -> None:
    prepared = SensitiveKeywords(NESTED)
    assert prepared.found_in(content) == found
    assert sensitive_keywords_in(content, NESTED) == found
    assert found == _keywords_one_by_one(content, NESTED)


def test_prepared_keywords_find_what_the_words_one_by_one_find() -> None:
    policy = {c: list(words) for c, words in DEFAULT_POLICY["sensitive_keywords"].items()}
    words = [w for ws in policy.values() for w in ws]
    texts = [
        *words,
        *(f"我们{a}，然后{b}了" for a, b in zip(words, reversed(words), strict=True)),
        *(w.upper() + "!" + w[:1] for w in words),
        "小区停水三天了",
    ]
    prepared = IntakePolicy.from_settings(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
    for text in texts:
        assert prepared.sensitive_keywords.found_in(text) == _keywords_one_by_one(text, policy)


def test_no_character_lower_cases_into_a_caseless_one() -> None:
    """What lets ``found_in`` pass over a text without squeezing it when the keywords are
    all CJK ideographs: such a character stays itself in lower case, and no other character
    (of all of Unicode) lower-cases into one."""
    for code in range(0x110000):
        char = chr(code)
        lowered = char.lower()
        assert lowered, char
        for found in domain._CASELESS.findall(lowered):
            assert found == char, f"U+{code:04X} lower-cases into {found!r}"


@pytest.mark.parametrize(
    "content",
    [
        "我实在活  不\n下_去了",  # spaces, a line break, an underscore between the characters
        "他说要自，，杀",
        "群体・性事件",
        "自\u3000杀",  # an ideographic space
        "不想活",
    ],
)
def test_keywords_spread_by_what_squeezing_drops_are_found(content: str) -> None:
    assert KEYWORDS._any_unsqueezed is not None  # the default policy's words are caseless
    assert KEYWORDS.found_in(content)
    assert KEYWORDS.found_in(content) == _keywords_one_by_one(
        content, {c: list(w) for c, w in KEYWORDS.items()}
    )


def test_random_texts_find_what_the_words_one_by_one_find() -> None:
    policy = {c: list(words) for c, words in DEFAULT_POLICY["sensitive_keywords"].items()}
    keyword_characters = sorted({ch for words in policy.values() for w in words for ch in w})
    alphabet = "".join(keyword_characters) + " ，_・\n\u3000a水"
    rng = random.Random(12)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        assert KEYWORDS.found_in(text) == _keywords_one_by_one(text, policy), text


def test_keywords_with_case_are_looked_for_in_the_squeezed_text() -> None:
    mixed = SensitiveKeywords({"violence": ["kill", "砍人"]})
    assert mixed._any_unsqueezed is None
    assert mixed.found_in("I will K-I-L-L") == ["kill"]
    assert mixed.found_in("他要砍 人") == ["砍人"]


def test_a_policy_without_keywords_finds_none() -> None:
    assert SensitiveKeywords({}).found_in("我实在活不下去了") == []
    assert SensitiveKeywords({"self_harm": []}).found_in("我实在活不下去了") == []


def test_prepared_keywords_read_as_the_policy_s_categories() -> None:
    prepared = IntakePolicy.from_settings(DEFAULT_POLICY_EFFECTIVE_FROM, DEFAULT_POLICY)
    assert dict(prepared.sensitive_keywords) == {
        c: tuple(words) for c, words in DEFAULT_POLICY["sensitive_keywords"].items()
    }


@pytest.mark.parametrize("ticket_type", ["complaint", "help", "report", "suggestion", "praise"])
def test_only_consultations_are_answered_on_the_spot(ticket_type: str) -> None:
    check_answer_on_the_spot("consultation")
    with pytest.raises(IllegalTransition) as refused:
        check_answer_on_the_spot(ticket_type)
    assert refused.value.rule == "Art 6"


def test_a_call_rating_needs_a_phone_ticket_not_yet_rated() -> None:
    check_call_rating("phone", already_rated=False)
    for channel in ("web", "wechat_official", "wechat_mini"):
        with pytest.raises(IllegalTransition) as refused:
            check_call_rating(channel, already_rated=False)
        assert refused.value.rule == "Art 14 (1)"
    with pytest.raises(IllegalTransition):
        check_call_rating("phone", already_rated=True)


def test_phones_are_compared_exactly() -> None:
    assert same_phone("13920001234", "13920001234")
    assert not same_phone("13920001234", "13920001235")
    assert not same_phone(None, "13920001234")


@pytest.mark.parametrize(
    ("text", "window"),
    [("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)), ("2d", timedelta(days=2))],
)
def test_the_duplicate_window_is_calendar_time(text: str, window: timedelta) -> None:
    assert calendar_window(text) == window


def test_working_days_make_no_duplicate_window() -> None:
    with pytest.raises(ValueError):
        calendar_window("1wd")


def test_attachment_limits() -> None:
    check_attachments(["https://a.cn/x"] * 9, DEFAULT)
    with pytest.raises(InvalidInput) as refused:
        check_attachments(["https://a.cn/x"] * 10, DEFAULT)
    assert refused.value.errors[0]["field"] == "attachments"
    with pytest.raises(InvalidInput) as refused:
        check_attachments(["https://a.cn/x", "https://a.cn/" + "x" * 2048], DEFAULT)
    assert refused.value.errors[0]["field"] == "attachments.1.url"


def test_search_terms_drop_punctuation_and_common_words() -> None:
    terms = search_terms("从早上八点开始停水，家里有老人！请尽快恢复供水。")
    assert {"停水", "老人", "恢复", "供水"} <= terms
    assert not {"，", "！", "。", "的", "有", "请"} & terms


@pytest.mark.parametrize(
    ("content", "query"),
    [
        ("小区停车难，晚上车位全满", "停车难"),
        ("小区停车难，晚上车位全满", "停车"),
        ("楼道里有很重的煤气味", "煤气味"),
        ("中华人民共和国劳动合同法", "劳动合同"),
        ("WiFi信号不好", "wifi"),
    ],
)
def test_a_query_found_in_a_content_has_all_its_terms_there(content: str, query: str) -> None:
    assert query_terms(query) <= search_terms(content)


@pytest.mark.parametrize(
    "content",
    [
        "从早上八点开始停水，家里有老人！请尽快恢复供水。",
        "今天早上和平区劝业场街道小区停车管理，停车位问题一直没有解决，影响周边居民生活。",
        "WiFi信号不好 3号楼 ５单元，中华人民共和国劳动合同法……联系 zhang@example.com",
        "  ，。！  ",
        "",
    ],
)
def test_search_terms_are_those_of_jieba_on_the_whole_text(
    content: str, jieba_default: jieba.Tokenizer
) -> None:
    whole = {t.strip().lower() for t in jieba_default.cut_for_search(content)}
    assert search_terms(content) == {
        t
        for t in whole
        if t and len(t) <= 32 and t not in STOPWORDS and any(c.isalnum() for c in t)
    }


def test_a_run_of_text_seen_before_is_not_segmented_again(segmented: list[str]) -> None:
    first = search_terms("路灯坏了三天，请尽快处理")
    segmented.clear()
    assert search_terms("井盖丢了，请尽快处理") == (first - {"路灯", "坏", "三天"}) | {
        "井盖",
        "丢",
    }
    assert segmented == ["井盖丢了"]


def test_a_query_needs_every_one_of_its_words() -> None:
    assert query_terms("物业 停水") == {"物业", "停水"}
    assert query_terms("的了，。") == set()


def test_every_progress_event_is_a_known_event_with_a_label() -> None:
    assert set(STATUS_AFTER_EVENT) <= set(EVENT_TYPES)
    assert set(STATUS_LABELS) == set(Status)


def test_name_masking() -> None:
    assert mask_name("刘芳") == "刘*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name(None) is None
