"""Intake's search words (jieba-rs) against jieba's own on its default dictionary: the
words stored before the move to jieba-rs were jieba's, and a query must still find them;
and against the words knowledge gives jieba's global dictionary, which intake must not see
(the embedded mode runs both in one process, the distributed mode does not)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jieba
import pytest

from services.intake import domain
from services.intake.domain import _searchable, query_terms, search_terms
from services.knowledge.tokens import DOMAIN_WORDS

ROOT = Path(__file__).resolve().parents[3]
CATALOG = json.loads((ROOT / "services/dispatch/data/catalog.json").read_text("utf-8"))

# What citizens write beside Chinese words: building and room numbers, plates, dates,
# decimals, units, addresses, mail, web, product names, full-width digits, rare characters
# (CJK extension A, compatibility ideographs) and line breaks.
TEXTS = (
    "3号楼2-501室楼上漏水，物业不管",
    "津A-12345车辆长期占用消防通道",
    "2026-01-15下午3:30停电，至今未恢复",
    "水深3.5米，涨了10%，又涨10.5%",
    "联系zhang_san@example.com或访问www.tj.gov.cn，网址打不开",
    "No.5楼B1-2车库，5.5G信号差，1.5a电流",
    "COVID-19核酸检测点e.g.社区卫生服务中心",
    "学C++的培训班退费难，AT&T手机无信号，C#也一样",
    "WiFi信号不好 3号楼 ５单元，中华人民共和国劳动合同法……",
    "电话138-1234-5678，身份证号1201011990.01.01",
    "版本1.2.3.4的APP，ticket_id是TJ20260115000123",
    "我叫王㐀，住在丽水小区\r\n第二行\t第三行",
    "T恤、AB型血、4S店、A股、QQ群、卡拉OK厅",
    "a-b_c.d 1-2.5 x.5.6 ab12.3cd 5%a a%%b 1%.5 A.B",
    "  ，。！  ",
    "",
)
WHEN = ("今天早上", "昨天晚上", "这几天", "上周开始", "最近一个月", "刚才")
PLACES = ("小区", "路口", "公交站旁", "菜市场门口", "学校附近", "商场北侧", "胡同里")
DETAILS = (
    "楼道灯坏了",
    "下水道堵塞返味",
    "电梯经常停运",
    "噪音很大影响休息",
    "停车位被长期占用",
    "供暖温度不够",
    "施工扬尘严重",
    "电动车在楼道充电",
    "外墙瓷砖脱落",
    "燃气有异味",
)
ASK = ("请尽快处理", "希望有关部门核实", "麻烦派人看看", "请给个答复", "盼早日解决")
# Pieces for texts no one writes but a segmenter meets: words of letters and Chinese,
# letters, digits and jieba's connectors (+#&._%-) side by side.
FRAGMENTS = (
    *"abxyzABZ0123456789",
    *"._%+#&-._-",
    *(" ", "，", "。", "㐀", "丽", "\r\n", "５"),
    *("T恤", "AB型", "4S店", "A股", "QQ", "C++", "AT&T", "No", "WiFi", "12345"),
    *("楼道", "停水", "热线", "物业", "小区", "劳动合同法", "新加坡", "山地车", "快冲"),
)


def corpus() -> list[str]:
    """Tickets built as the bench builds them from the catalog, the texts above, and
    seeded random mixtures of fragments: the same texts on every run."""
    rng = random.Random(12345)
    texts = list(TEXTS)
    for i, matter in enumerate(CATALOG["matters"] * 3):
        district = CATALOG["districts"][i % len(CATALOG["districts"])]
        for keyword in matter.get("keywords") or [matter["name"]]:
            texts.append(
                f"{rng.choice(WHEN)}{district['name']}{district['street']}"
                f"{rng.choice(PLACES)}{matter['name']}，{rng.randint(1, 40)}号楼"
                f"{rng.randint(1, 6)}-{rng.randint(101, 2602)}{rng.choice(DETAILS)}，"
                f"{rng.randint(0, 23)}点{rng.randint(0, 59)}分{keyword}问题一直没有解决，"
                f"{rng.choice(ASK)}。"
            )
    texts += ["".join(rng.choices(FRAGMENTS, k=rng.randint(1, 12))) for _ in range(1500)]
    return texts


def jieba_search_terms(tokenizer: jieba.Tokenizer, text: str) -> set[str]:
    """``search_terms`` as intake computed them with jieba."""
    return {term for term in map(_searchable, tokenizer.cut_for_search(text)) if term}


def jieba_query_terms(tokenizer: jieba.Tokenizer, text: str) -> set[str]:
    """``query_terms`` as intake computed them with jieba."""
    terms = set()
    for token in tokenizer.cut(text):
        inner = [
            token[i : i + n]
            for n in (2, 3)
            if len(token) > n
            for i in range(len(token) - n + 1)
            if tokenizer.FREQ.get(token[i : i + n])
        ]
        start = token.find
        covered = {i for part in inner for i in range(start(part), start(part) + len(part))}
        words = inner if inner and len(covered) == len(token) else [token]
        terms |= {term for term in map(_searchable, words) if term}
    return terms


def test_intake_gives_the_words_jieba_gives_on_its_default_dictionary(
    jieba_default: jieba.Tokenizer,
) -> None:
    """The words stored by jieba need no re-indexing, and a later rjieba that segments
    otherwise fails here before it changes what intake stores."""
    texts = corpus()
    assert len(texts) > 2000
    differ = [
        text
        for text in texts
        if search_terms(text) != jieba_search_terms(jieba_default, text)
        or query_terms(text) != jieba_query_terms(jieba_default, text)
    ]
    assert differ == []


# Runs of digits and Chinese led by a number, as tickets write them (intake cuts them after
# their leading numbers, domain._run_terms), and such runs whose first characters after the
# number make a dictionary word that jieba's route gives one by one: its model joins them
# only when it sees them with the number before them.
NUMBERED = (
    "4号楼1单元电动车在楼道充电，17点6分左右自来水发黄，2点35分左右占道经营",
    "9海中",
    "93照到",
    "49回神小骗子",
    "73别过韩千叶",
    "105等刷",
    "3号楼1号店门口",
    "1号店",
    "12点1号店，1号店12",
    "哈哈哈3哈哈哈",
    "第3号楼12层",
    "点6分",
    "5",
    "5点",
    "120",
)


def test_a_run_led_by_a_number_gives_jieba_s_words(jieba_default: jieba.Tokenizer) -> None:
    """Cut after its leading numbers (and the single characters between them), a run still
    gives the words jieba gives the whole run, over seeded runs of numbers and dictionary
    words."""
    rng = random.Random(26)
    words = sorted(
        w
        for w, f in jieba_default.FREQ.items()
        if f and len(w) <= 3 and "\u4e00" <= w[0] <= "\u9fd5"
    )
    texts = list(NUMBERED)
    for _ in range(3000):
        pieces = [str(rng.randint(0, 120))]
        for _ in range(rng.randint(0, 6)):
            pieces.append(rng.choice(words) if rng.random() < 0.6 else str(rng.randint(0, 99)))
        texts.append("".join(pieces))
    differ = [
        text for text in texts if search_terms(text) != jieba_search_terms(jieba_default, text)
    ]
    assert differ == []


def test_a_run_led_by_a_number_is_segmented_once_for_every_number(segmented: list[str]) -> None:
    """A ticket's numbers make most of its runs new (17点6分左右…): what follows them is
    segmented once, the numbers not at all."""
    for cache in (domain._run_terms, domain._piece_terms, domain._rest_terms, domain._lead_terms):
        cache.cache_clear()
    first, second = search_terms("17点6分左右自来水发黄"), search_terms("8点45分左右自来水发黄")
    assert segmented == ["分左右自来水发黄"]
    assert {"17", "6", "点", "分", "自来水"} <= first
    assert {"8", "45", "点", "分", "自来水"} <= second


@pytest.mark.parametrize(
    ("content", "query"),
    [
        ("3号楼2-501室楼上漏水", "501"),
        ("3号楼2-501室楼上漏水", "2-501"),
        ("津A-12345车辆占用消防通道", "A-12345"),
        ("2026-01-15下午停电", "01-15"),
        ("网站www.tj.gov.cn打不开", "tj.gov"),
    ],
)
def test_a_query_of_part_of_a_number_or_address_finds_the_ticket(content: str, query: str) -> None:
    """jieba-rs alone keeps 2-501 as one word (jieba: 2, -, 501): a search for 501 would
    miss a new ticket, and one for 2-501 every ticket jieba indexed."""
    assert query_terms(query) <= search_terms(content)


def test_intake_words_do_not_change_when_jieba_is_given_a_domain_word(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Embedded mode (knowledge in the same process adds its words to jieba's global
    dictionary, services/knowledge/tokens.py) gives the same words as distributed mode."""
    word = "12345热线"
    assert word in DOMAIN_WORDS
    jieba.initialize()
    # jieba's global dictionary without the word (whether or not knowledge was imported),
    # restored after the test
    freq = dict(jieba.dt.FREQ)
    monkeypatch.setattr(jieba.dt, "FREQ", freq)
    monkeypatch.setattr(jieba.dt, "total", jieba.dt.total - (freq.pop(word, 0) or 0))
    content, query = "拨打12345热线反映加装电梯问题，12345热线说转给街道", "12345热线"
    before = search_terms(content), query_terms(query)

    jieba.add_word(word, freq=20000)

    assert jieba.dt.FREQ[word] == 20000
    assert (search_terms(content), query_terms(query)) == before
