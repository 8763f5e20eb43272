"""Chinese word segmentation for search (jieba), the same for indexing and for queries.

``jieba.cut_for_search`` yields words and their shorter parts (天津市 → 天津, 津市, 天津市),
so a query word matches an entry that used a longer compound. The hidden Markov model is
off: segmentation then depends on the dictionary alone, so the same characters give the
same terms in an entry and in a query. Changing the word list below changes terms:
rebuild the index afterwards (``POST /search/reindex``)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)

# Words of the hotline's own subject matter that jieba's general dictionary lacks.
DOMAIN_WORDS = (
    "12345热线",
    "公积金",
    "住房公积金",
    "居住证",
    "积分落户",
    "供热",
    "供暖",
    "采暖费",
    "物业费",
    "不动产权证",
    "营业执照",
    "医保",
    "社保卡",
    "租房补贴",
    "燃气",
    "电动自行车",
    "网约车",
    "垃圾分类",
    "违章建筑",
    "噪音扰民",
    "拖欠工资",
    "退役军人",
    "新生儿",
    "核酸",
    "暖气",
    "不热",
    "停水",
    "停电",
    "老旧小区",
    "加装电梯",
)
for _word in DOMAIN_WORDS:
    jieba.add_word(_word, freq=20000)

# Function words and question words that say nothing about the subject.
STOPWORDS = frozenset(
    "的 了 和 与 及 或 是 在 我 你 他 她 它 们 我们 你们 他们 请问 怎么 怎么办 如何 什么 哪里 "
    "哪些 吗 呢 吧 啊 呀 有 有没有 要 能 能否 是否 为 对 等 将 被 把 从 向 到 给 就 也 都 还 并 "
    "而 但 如果 因为 所以 这 那 这个 那个 之 其 个 一 一下 不 没 没有 想 想要 咨询 反映 您好 你好 "
    "谢谢 麻烦 一个 可以 已经 现在".split()
)
_KEEP = re.compile(r"[0-9A-Za-z\u3400-\u9fff]")
TITLE_WEIGHT = 3  # a word in the title counts as three in the body
QUESTION_WEIGHT = 2  # a word in an FAQ question counts twice


def initialize() -> None:
    """Load the dictionary now (≈0.5 s) rather than on the first request."""
    jieba.initialize()


def tokenize(text: str) -> list[str]:
    """The search terms of ``text`` in order (repeats kept), lower-cased."""
    terms = []
    for raw in jieba.cut_for_search(text, HMM=False):
        term = raw.strip().lower()
        if term and term not in STOPWORDS and _KEEP.search(term):
            terms.append(term[:64])
    return terms


def weighted_terms(parts: Iterable[tuple[str | None, int]]) -> Counter[str]:
    """Term frequencies of an entry: each (text, weight) part counts ``weight`` times."""
    counts: Counter[str] = Counter()
    for text, weight in parts:
        if text:
            for term in tokenize(text):
                counts[term] += weight
    return counts


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, first occurrence first."""
    return list(dict.fromkeys(tokenize(text)))
