"""Detectors for personal information and classification markings (Art 20, 28, 29).

Pure functions: text in, findings out, no I/O. Knowledge screening refuses what they find
(Art 20); masking and case anonymisation replace it (``mask_findings``).

What is looked for, and how false positives are kept out:

- ``resident_id`` (居民身份证号码): 18 characters, 17 digits and a check character valid
  per GB 11643-1999 (ISO 7064 MOD 11-2), a region code starting 1–8 and a real birth date
  (1900–2099). Also written 6-8-4 with spaces. A number that fails these is not an ID.
- ``mobile`` (手机号码): mainland mobiles ``1[3-9]`` + 9 digits, optionally ``+86``/``86``
  and written 3-4-4 with spaces or hyphens; not inside a longer number, not a decimal,
  not an amount (followed by 元/万/亿). Fixed-line numbers are not mobiles.
- ``bank_card`` (银行卡号): 16–19 digits, contiguous or in groups of four, passing Luhn.
- ``email`` (电子邮箱).
- ``classification_marking`` (密级标志): 绝密 and 工作秘密 anywhere; 机密 and 秘密 anywhere
  except inside a category name from the setting (国家秘密, 商业秘密 …: "涉及国家秘密的
  信息不予公开" states a rule, it does not mark the text). 内部 is an everyday word
  (小区内部道路, 房屋内部装修), so it counts only where it is used as a marking: followed by
  ★ or by 资料/文件/材料/参考/传阅/掌握/发行/刊物/口径/通报/讨论稿, after 仅供/仅限/限于,
  in brackets (【内部】), or standing alone on a line. Any marking followed by ★ counts, even
  inside an exempt term.

Numbers listed in the ``public_contacts`` setting (hotline and service-desk phones, public
collection accounts, public mailboxes) are never refused. Dates, amounts, document numbers
(津政办发〔2025〕12号), postcodes and unified social credit codes do not match any pattern.
Positions are 0-based character offsets into the field as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any


class FindingKind(StrEnum):
    RESIDENT_ID = "resident_id"
    MOBILE = "mobile"
    BANK_CARD = "bank_card"
    EMAIL = "email"
    CLASSIFICATION_MARKING = "classification_marking"
    # Art 20: text that declares or reveals such information, found by term lists
    COMMERCIAL_SECRET = "commercial_secret"  # 商业秘密
    PERSONAL_PRIVACY = "personal_privacy"  # 个人隐私
    SENSITIVE = "sensitive"  # 敏感信息
    SECURITY = "security"  # 危及国家安全、公共安全、经济安全、社会稳定的信息


# The kinds found by term lists (policy settings) rather than by patterns.
TERM_KINDS = (
    FindingKind.COMMERCIAL_SECRET,
    FindingKind.PERSONAL_PRIVACY,
    FindingKind.SENSITIVE,
    FindingKind.SECURITY,
)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    field: str
    position: int
    length: int
    excerpt: str  # masked for personal information; the term itself for term findings

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


@dataclass(frozen=True)
class ScreeningRules:
    public_contacts: frozenset[str] = frozenset()
    exempt_terms: tuple[str, ...] = ()
    # kind -> terms that declare or reveal information of that kind (longest first)
    terms: tuple[tuple[FindingKind, tuple[str, ...]], ...] = ()
    # (kind, word) pairs a reviewer overruled as false positives for this text
    allowed: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(
        cls,
        public_contacts: Iterable[str],
        exempt_terms: Iterable[str],
        terms: Mapping[str, Iterable[str]] | None = None,
        allowed: Iterable[tuple[str, str]] = (),
    ) -> ScreeningRules:
        return cls(
            frozenset(_contact_key(c) for c in public_contacts),
            tuple(sorted(set(exempt_terms), key=len, reverse=True)),
            tuple(
                (FindingKind(kind), tuple(sorted(set(words), key=len, reverse=True)))
                for kind, words in (terms or {}).items()
            ),
            frozenset(allowed),
        )


# Full-width digits, letters, @ and . are read as their ASCII forms; one character for one,
# so positions stay those of the original text.
_FULLWIDTH = {
    **{0xFF10 + i: ord("0") + i for i in range(10)},
    **{0xFF21 + i: ord("A") + i for i in range(26)},
    **{0xFF41 + i: ord("a") + i for i in range(26)},
    0xFF20: ord("@"),
    0xFF0E: ord("."),
    0xFF0B: ord("+"),
    0xFF0D: ord("-"),
    0x3000: ord(" "),
}

_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6} ?\d{8} ?\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(
    r"(?<![0-9.])(?:(?:\+|00)?86[- ]?)?(1[3-9]\d(?:[- ]?\d{4}){2})(?![0-9])(?!\s*[元万亿])"
)
_BANK_CARD = re.compile(
    r"(?<![0-9.])(\d{16,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]\d{1,3})?)(?![0-9])(?!\s*[元万亿])"
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_MARKING = re.compile(r"工作秘密|绝密|机密|秘密|内部")
_STAR = re.compile(r"\s*[★☆]")
_INTERNAL_AFTER = re.compile(r"\s*(?:资料|文件|材料|参考|传阅|掌握|发行|刊物|口径|通报|讨论稿)")
_INTERNAL_BEFORE = ("仅供", "仅限", "限于")
_BRACKETS = {"【": "】", "〔": "〕", "[": "]", "（": "）", "(": ")", "「": "」", "《": "》"}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_is_valid(number: str) -> bool:
    """GB 11643-1999: region code, birth date and the MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit() or number[0] not in "12345678":
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2099:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_is_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _contact_key(contact: str) -> str:
    contact = contact.strip().translate(_FULLWIDTH)
    return contact.lower() if "@" in contact else _digits(contact)


def _mask(text: str) -> str:
    if len(text) <= 4:
        return text[0] + "*" * (len(text) - 1)
    keep = max(2, len(text) // 4)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


def _is_public(rules: ScreeningRules, key: str) -> bool:
    if key in rules.public_contacts:
        return True
    # a public mobile may be listed with or without the country code
    return key.startswith("86") and key[2:] in rules.public_contacts


def _marking_is_used_as_marking(text: str, start: int, end: int, rules: ScreeningRules) -> bool:
    word = text[start:end]
    if _STAR.match(text, end):
        return True
    if word in ("绝密", "工作秘密"):
        return True
    if word in ("机密", "秘密"):
        for term in rules.exempt_terms:
            offset = term.find(word)
            while offset != -1:
                if text.startswith(term, start - offset):
                    return False
                offset = term.find(word, offset + 1)
        return True
    # 内部: only as a marking, never as the everyday word
    if _INTERNAL_AFTER.match(text, end):
        return True
    if any(text.endswith(b, 0, start) for b in _INTERNAL_BEFORE):
        return True
    before, after = text[start - 1 : start], text[end : end + 1]
    if before in _BRACKETS and _BRACKETS[before] == after:
        return True
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : None if line_end == -1 else line_end]
    return line.strip(" \t\r:：。.·、-—*#") == word


def screen_text(field: str, text: str, rules: ScreeningRules) -> list[Finding]:
    """Every finding in one field, in order of position; spans never overlap."""
    if not text:
        return []
    norm = text.translate(_FULLWIDTH)
    taken: list[tuple[int, int]] = []
    findings: list[Finding] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(kind: FindingKind, start: int, end: int, excerpt: str | None = None) -> None:
        taken.append((start, end))
        shown = _mask(text[start:end]) if excerpt is None else excerpt
        findings.append(Finding(kind, field, start, end - start, shown))

    for m in _EMAIL.finditer(norm):
        if not _is_public(rules, m.group(0).lower()):
            add(FindingKind.EMAIL, m.start(), m.end())
    for m in _RESIDENT_ID.finditer(norm):
        number = m.group(1).replace(" ", "")
        if free(m.start(1), m.end(1)) and resident_id_is_valid(number):
            if not _is_public(rules, number):
                add(FindingKind.RESIDENT_ID, m.start(1), m.end(1))
    for m in _MOBILE.finditer(norm):
        if free(m.start(), m.end()) and not _is_public(rules, _digits(m.group(0))):
            add(FindingKind.MOBILE, m.start(), m.end())
    for m in _BANK_CARD.finditer(norm):
        number = _digits(m.group(1))
        if (
            free(m.start(1), m.end(1))
            and 16 <= len(number) <= 19
            and luhn_is_valid(number)
            and not _is_public(rules, number)
        ):
            add(FindingKind.BANK_CARD, m.start(1), m.end(1))
    for m in _MARKING.finditer(norm):
        if (
            free(m.start(), m.end())
            and _marking_is_used_as_marking(norm, m.start(), m.end(), rules)
            and (FindingKind.CLASSIFICATION_MARKING.value, m.group(0)) not in rules.allowed
        ):
            add(FindingKind.CLASSIFICATION_MARKING, m.start(), m.end(), m.group(0))
    for kind, words in rules.terms:
        for word in words:
            if (kind.value, word) in rules.allowed:
                continue
            start = norm.find(word)
            while start != -1:
                end = start + len(word)
                if free(start, end):
                    add(kind, start, end, word)
                start = norm.find(word, end)
    return sorted(findings, key=lambda f: f.position)


def screen_fields(fields: Mapping[str, str | None], rules: ScreeningRules) -> list[Finding]:
    """Every finding in every field (``faq[0].answer`` style names for nested ones)."""
    found: list[Finding] = []
    for name, text in fields.items():
        if text:
            found.extend(screen_text(name, text, rules))
    return found


def mask_findings(text: str, findings: Iterable[Finding], replacement: str = "*") -> str:
    """``text`` with every finding's span replaced by ``replacement`` (one per character,
    so positions of later text do not move)."""
    chars = list(text)
    for f in findings:
        for i in range(f.position, min(f.position + f.length, len(chars))):
            chars[i] = replacement
    return "".join(chars)


_NO_RULES = ScreeningRules()
# Every kind of personal information holds an @ or at least 11 digits in a row, at most
# one separator between two (full-width digits are digits; the separators as _FULLWIDTH
# reads them): 24号楼2单元 or 18点27分 holds none. The @s are looked for as substrings and
# the digits by a pattern of their own, which the regex engine starts only at a digit
# (one pattern with both, tried at every character, took twice the time).
_ELEVEN_DIGITS = re.compile(r"\d(?:[- \uff0d\u3000]?\d){10}")


def _may_be_personal(text: str) -> bool:
    return "@" in text or "\uff20" in text or _ELEVEN_DIGITS.search(text) is not None


def mask_personal_data(text: str, rules: ScreeningRules | None = None) -> str:
    """Every personal-information finding (ID, mobile, card, e-mail) masked; markings kept."""
    if rules is None and not _may_be_personal(text):
        return text  # most requests name no phone, ID, card or e-mail
    found = [
        f
        for f in screen_text("text", text, rules or _NO_RULES)
        if f.kind is not FindingKind.CLASSIFICATION_MARKING
    ]
    return mask_findings(text, found)


# ---- anonymisation for publication (cases for training and publicity, Art 25, 30) --------

# Common surnames (百家姓, the most frequent): a name is only taken as one when it starts so.
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左"
    "柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈"
)
_ROLE_BEFORE = (
    "诉求人|来电人|投诉人|举报人|市民|居民|业主|当事人|群众|老人|患者|租户|房东|工作人员|网格员"
)
_NAME_AFTER_ROLE = re.compile(
    rf"(?:{_ROLE_BEFORE})([\u4e00-\u9fa5]{{2,3}}?)"
    r"(?=反映|来电|称|表示|投诉|举报|说|诉称|要求|希望|家|在|于|的|到|已|前往|联系|"
    r"，|,|。|、|）|\))"
)
_TITLE = re.compile(r"先生|女士|师傅|大爷|大妈|阿姨|老师|同志|书记|主任|经理|科长|社长|站长")
_HOUSE_NUMBER = re.compile(r"\d+(?:-\d+)?(号楼|号院|号|栋|幢|单元|门|室|层|楼|弄|户)")
_COMPOUND = re.compile(
    r"(?:(?![某号路街道区市])[\u4e00-\u9fa5]){2,8}?(小区|花园|家园|公寓|大厦|新村|嘉园|苑)"
)


@dataclass(frozen=True)
class Anonymised:
    text: str
    replaced: dict[str, int]  # what kind of thing was replaced, how often


def anonymise(
    text: str, rules: ScreeningRules | None = None, names: Iterable[str] = ()
) -> Anonymised:
    """Text fit for a public case: personal information masked (the same detectors as
    screening), people's names reduced to surname + 某 (names given, names after a role
    word such as 市民/业主, names before a title such as 先生), residential compounds to 某 +
    the kind, house numbers to 某."""
    counts: dict[str, int] = {}

    def count(kind: str, n: int = 1) -> None:
        if n:
            counts[kind] = counts.get(kind, 0) + n

    found = [f for f in screen_text("text", text, rules or ScreeningRules()) if f.kind in _PERSONAL]
    for f in found:
        count(f.kind.value)
    out = mask_findings(text, found)
    for name in sorted({n for n in names if len(n) >= 2}, key=len, reverse=True):
        n = out.count(name)
        out = out.replace(name, name[0] + "某")
        count("name", n)

    def role_name(m: re.Match[str]) -> str:
        name = m.group(1)
        if name[0] not in _SURNAMES or name.endswith("某"):
            return m.group(0)
        count("name")
        return m.group(0).replace(name, name[0] + "某", 1)

    out = _NAME_AFTER_ROLE.sub(role_name, out)

    # 张伟经理 → 张经理, 王建国先生 → 王先生: the surname stays, the given name goes
    for m in reversed(list(_TITLE.finditer(out))):
        start = m.start()
        for length in (3, 2):
            first = start - length
            name = out[max(first, 0) : start]
            if first >= 0 and name[0] in _SURNAMES and "某" not in name:
                out = out[: first + 1] + out[start:]
                count("name")
                break
    houses = len(_HOUSE_NUMBER.findall(out))
    out = _HOUSE_NUMBER.sub(lambda m: "某" + m.group(1), out)
    count("address", houses)
    compounds = len(_COMPOUND.findall(out))
    out = _COMPOUND.sub(lambda m: "某" + m.group(1), out)
    count("address", compounds)
    return Anonymised(out, counts)


_PERSONAL = frozenset(
    {FindingKind.RESIDENT_ID, FindingKind.MOBILE, FindingKind.BANK_CARD, FindingKind.EMAIL}
)
