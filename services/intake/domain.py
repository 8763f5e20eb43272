"""Intake's pure rules: who must give a name and phone, what a phone number looks like,
how a ticket number reads, answering on the spot, call ratings, sensitive content, the
policy settings and the words a ticket is searched by. No I/O here."""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.calendar import SHANGHAI, Period, PeriodUnit
from shared.errors import IllegalTransition, InvalidInput
from shared.events import Channel

# Tianjin's 16 districts by administrative code (市辖区).
DISTRICTS: dict[str, str] = {
    "120101": "和平区",
    "120102": "河东区",
    "120103": "河西区",
    "120104": "南开区",
    "120105": "河北区",
    "120106": "红桥区",
    "120110": "东丽区",
    "120111": "西青区",
    "120112": "津南区",
    "120113": "北辰区",
    "120114": "武清区",
    "120115": "宝坻区",
    "120116": "滨海新区",
    "120117": "宁河区",
    "120118": "静海区",
    "120119": "蓟州区",
}

# Art 5: these types need no contact or verification, so name and phone are optional.
CONTACT_OPTIONAL_TYPES = frozenset({"consultation", "suggestion", "praise"})

MOBILE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s()\-]")
_COUNTRY_CODE = re.compile(r"^\+?86")
LANDLINE = re.compile(r"^0\d{9,11}$")  # area code and local number, separators removed


class RequesterMissing(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def normalise_phone(raw: str) -> str:
    """One spelling per number, so duplicates and a citizen's lookup find it however it
    was typed: a mainland mobile as 11 digits (+86 and separators dropped), a landline as
    area code, dash, local number (010 and 02x are 3-digit area codes, the rest 4).
    Raises ValueError for anything else."""
    if MOBILE.fullmatch(raw):  # most come as a mobile's 11 digits already (nothing to drop)
        return raw
    phone = _SEPARATORS.sub("", raw)
    if not phone.startswith("0"):
        national = _COUNTRY_CODE.sub("", phone)
        if national != phone and national[:1] in tuple("23456789"):
            national = "0" + national  # +86 22 …: a landline written without its trunk 0
        phone = national
    if MOBILE.match(phone):
        return phone
    if LANDLINE.match(phone):
        area = 3 if phone[1] in "12" else 4
        local = phone[area:]
        if 7 <= len(local) <= 8:
            return f"{phone[:area]}-{local}"
    raise ValueError("not a valid mainland China mobile number (11 digits, 1[3-9]…) or landline")


def check_requester(
    ticket_type: str,
    name: str | None,
    phone: str | None,
    *,
    anonymous: bool,
    anonymous_allowed: bool,
) -> None:
    """Art 5: name and phone are required when the matter needs contact or verification —
    every type but consultation, suggestion and praise — unless the requester chose
    anonymity and the catalog allows it for the matter."""
    if ticket_type in CONTACT_OPTIONAL_TYPES:
        return
    if anonymous:
        if anonymous_allowed:
            return
        raise RequesterMissing("anonymous", "this matter does not allow anonymous requests (Art 5)")
    if not name:
        raise RequesterMissing("requester.name", f"required for {ticket_type} tickets (Art 5)")
    if not phone:
        raise RequesterMissing("requester.phone", f"required for {ticket_type} tickets (Art 5)")


def ticket_number(serial: int, registered_at: datetime) -> str:
    """Human-readable number: TJ + registration date (Shanghai) + serial, e.g.
    TJ20260115000123."""
    return f"{ticket_number_prefix(registered_at)}{serial:06d}"


# a ticket number: the prefix (TJ and the registration day) and the serial, six digits or
# more (``ticket_number``); the serial at most tickets.id's largest value
_NUMBER = re.compile(r"TJ[0-9]{8}([0-9]{6,10})")
_MAX_SERIAL = 2**31 - 1


def ticket_serial(number: str) -> int | None:
    """The serial ticket ``number`` ends with (``ticket_number``'s inverse): the ticket's
    row is found by it, through the table's primary key, and then by the whole number
    (``services.intake.models.numbered``). None for a text no ticket number reads as."""
    found = _NUMBER.fullmatch(number)
    if found is None:
        return None
    serial = int(found.group(1))
    return serial if serial <= _MAX_SERIAL else None


def ticket_number_prefix(registered_at: datetime) -> str:
    """The number's part before the serial (PostgreSQL appends the serial itself, in the
    statement that inserts the ticket: services/intake/handlers/registration.py)."""
    day = _last_day
    if registered_at.tzinfo is None or not day.start <= registered_at < day.end:
        day = _numbering_day(registered_at)
    return day.prefix


@dataclass(frozen=True, slots=True)
class _NumberingDay:
    """A Shanghai day as UTC bounds and the numbers' prefix on it: the tickets of a day
    are numbered without converting each one's time to Shanghai's (a zone lookup and a
    format, a few microseconds a ticket)."""

    start: datetime
    end: datetime
    prefix: str


def _numbering_day(registered_at: datetime) -> _NumberingDay:
    global _last_day
    local = registered_at.astimezone(SHANGHAI)
    start = datetime.combine(local.date(), datetime.min.time(), tzinfo=SHANGHAI)
    end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    day = _NumberingDay(start.astimezone(UTC), end.astimezone(UTC), f"TJ{local:%Y%m%d}")
    if registered_at.tzinfo is not None:
        _last_day = day
    return day


_last_day = _NumberingDay(datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC), "")


def mask_phone(phone: str | None) -> str | None:
    """138****1234 (Art 28)."""
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_id_number(number: str | None) -> str | None:
    """120101********1234: the region and the last four (Art 28)."""
    if not number:
        return number
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


@dataclass(frozen=True)
class Matter:
    code: str
    name: str
    default_urgency: str
    anonymous_allowed: bool
    active: bool


# ---- ticket status, as intake knows it from the ticket events (RULES.md §3) -----------


class Status(StrEnum):
    REGISTERED = "registered"
    ANSWERED = "answered"  # answered on the spot and closed (Art 6)
    PENDING_DISPATCH = "pending_dispatch"
    PENDING_DETERMINATION = "pending_determination"
    DISPATCHED = "dispatched"
    RETURN_REVIEW = "return_review"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    REHANDLING = "rehandling"
    CLOSED = "closed"


# What each event on the ticket's way through dispatch and evaluation makes of its status.
STATUS_AFTER_EVENT: dict[str, Status] = {
    "ticket.dispatched": Status.DISPATCHED,
    "ticket.pending_determination": Status.PENDING_DETERMINATION,
    "ticket.determination_made": Status.PENDING_DISPATCH,
    "ticket.accepted": Status.ACCEPTED,
    "ticket.return_requested": Status.RETURN_REVIEW,
    "ticket.return_approved": Status.PENDING_DISPATCH,
    # Art 10: a return is asked for before acceptance; a rejected one leaves it dispatched.
    "ticket.return_rejected": Status.DISPATCHED,
    "ticket.completed": Status.COMPLETED,
    "ticket.rehandling_started": Status.REHANDLING,
    "evaluation.revisit_recorded": Status.CLOSED,
}

# What a citizen is told (Chinese, as the channels show it).
STATUS_LABELS: dict[Status, str] = {
    Status.REGISTERED: "已受理",
    Status.ANSWERED: "已直接答复",
    Status.PENDING_DISPATCH: "待派单",
    Status.PENDING_DETERMINATION: "确定承办单位中",
    Status.DISPATCHED: "已派单",
    Status.RETURN_REVIEW: "转派中",
    Status.ACCEPTED: "办理中",
    Status.COMPLETED: "已办结",
    Status.REHANDLING: "再次办理中",
    Status.CLOSED: "已回访",
}


def check_answer_on_the_spot(ticket_type: str) -> None:
    # Art 6: only a consultation may be answered on the spot; everything else is dispatched.
    if ticket_type != "consultation":
        raise IllegalTransition(
            f"only a consultation can be answered on the spot; a {ticket_type} ticket "
            "must be dispatched to a handling unit",
            rule="Art 6",
        )


# The hotline's own staff transcribe requests from any channel; everyone else files on
# the channel they are (an account's, or the public website's).
CHANNEL_NAMING_ROLES = frozenset({"operator", "admin"})


def ticket_channel(role: str, bound: Channel | None, given: Channel | None) -> Channel:
    """The channel a ticket comes in on: the account's, never what the body claims."""
    if bound is None and role not in CHANNEL_NAMING_ROLES:
        bound = "web"
    if bound is not None:
        if given is not None and given != bound:
            raise InvalidInput(
                "channel", f"this account files tickets on the {bound} channel only, not {given}"
            )
        return bound
    if given is None:
        raise InvalidInput("channel", "required: the channel the request came in on")
    return given


def check_call_rating(channel: str, already_rated: bool) -> None:
    # Art 14 (1): after a call the requester rates the hotline's call service, once.
    if channel != "phone":
        raise IllegalTransition(
            f"only a phone call can be rated; this ticket came in by {channel}",
            rule="Art 14 (1)",
        )
    if already_rated:
        raise IllegalTransition("this call has already been rated", rule="Art 14 (1)")


def same_phone(stored_index: str | None, given_index: str | None) -> bool:
    """The citizen's proof of ownership (Art 28): the blind indexes of the phone the ticket
    was filed with and the one given, compared in constant time."""
    return (
        stored_index is not None
        and given_index is not None
        and hmac.compare_digest(stored_index.encode(), given_index.encode())
    )


# ---- policy settings (versioned by effective date) ------------------------------------

# RULES.md §10, §11: every value here is a default policy setting; admins add versions.
DEFAULT_POLICY: dict[str, Any] = {
    # Art 27: sensitive or extreme content, flagged at once and first in every queue.
    "sensitive_keywords": {
        "self_harm": (
            "自杀 轻生 寻死 不想活 活不下去 跳楼 跳河 割腕 上吊 服毒 喝农药 安眠药 结束生命"
        ).split(),
        "violence": (
            "杀人 砍人 捅人 行凶 报复社会 同归于尽 炸药 爆炸物 纵火 放火 持刀 弄死"
        ).split(),
        "mass_incident": (
            "集体上访 群体上访 聚众 围堵 堵路 拉横幅 打横幅 静坐 罢工 游行 示威 群体性事件"
        ).split(),
    },
    # A likely duplicate: same phone and matter within this window (calendar time).
    "duplicate_window": "24h",
    # Attachments are kept as references (URLs), never as files.
    "attachments": {"max_count": 9, "max_url_length": 2048},
}
DEFAULT_POLICY_EFFECTIVE_FROM = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 Shanghai

_CALENDAR_UNITS = {
    PeriodUnit.MINUTES: timedelta(minutes=1),
    PeriodUnit.HOURS: timedelta(hours=1),
    PeriodUnit.CALENDAR_DAYS: timedelta(days=1),
}


def calendar_window(text: str) -> timedelta:
    """'24h', '30m' or '2d' as a duration; working days make no sense for a look-back."""
    period = Period.parse(text)
    if period.unit not in _CALENDAR_UNITS:
        raise ValueError("use calendar time (m, h or d), not working days")
    return period.amount * _CALENDAR_UNITS[period.unit]


@dataclass(frozen=True)
class IntakePolicy:
    effective_from: datetime
    sensitive_keywords: SensitiveKeywords
    duplicate_window: timedelta
    max_attachments: int
    max_attachment_url_length: int

    @classmethod
    def from_settings(cls, effective_from: datetime, settings: Mapping[str, Any]) -> IntakePolicy:
        return cls(
            effective_from=effective_from,
            sensitive_keywords=SensitiveKeywords(settings["sensitive_keywords"]),
            duplicate_window=calendar_window(settings["duplicate_window"]),
            max_attachments=settings["attachments"]["max_count"],
            max_attachment_url_length=settings["attachments"]["max_url_length"],
        )


def check_attachments(urls: Sequence[str], policy: IntakePolicy) -> None:
    """Attachments are references with limits (count, URL length) set by policy."""
    if len(urls) > policy.max_attachments:
        raise InvalidInput(
            "attachments", f"at most {policy.max_attachments} attachments per ticket"
        )
    for index, url in enumerate(urls):
        if len(url) > policy.max_attachment_url_length:
            raise InvalidInput(
                f"attachments.{index}.url",
                f"longer than {policy.max_attachment_url_length} characters",
            )


# ---- sensitive content (Art 27) -------------------------------------------------------

_NOT_TEXT = re.compile(r"[\W_]+")  # whitespace and punctuation, including Chinese
# Characters without case that no other character lower-cases into (tests/unit/intake/
# test_domain.py reads all of Unicode to hold this): CJK ideographs. Where ``_squeeze(text)``
# holds a word of them, the text itself holds its characters in turn with only what
# ``_squeeze`` drops between them.
_CASELESS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def _squeeze(text: str) -> str:
    """'自 杀' and '自，杀' are still 自杀: spacing and punctuation do not hide a keyword."""
    return _NOT_TEXT.sub("", text).lower()


def _spread(word: str) -> str:
    """A pattern finding ``word`` (squeezed, caseless) in a text before it is squeezed:
    its characters with anything ``_squeeze`` drops between them."""
    return r"[\W_]*".join(map(re.escape, word))


class SensitiveKeywords(Mapping[str, tuple[str, ...]]):
    """Art 27: a policy's keywords by category, prepared once for ``found_in`` (every
    registration asks): each word as it is looked for, and one pattern that tells whether
    any of them is in a text at all, which most texts are not. Which ones are is still
    asked word by word, so a keyword inside another is found as before."""

    def __init__(self, by_category: Mapping[str, Sequence[str]]) -> None:
        self._by_category = {category: tuple(words) for category, words in by_category.items()}
        looked_for: dict[str, str] = {}  # each word as squeezed, in policy order, once
        for words in self._by_category.values():
            for word in words:
                squeezed = _squeeze(word)
                if squeezed and word not in looked_for:
                    looked_for[word] = squeezed
        self._looked_for = tuple(looked_for.items())
        self._any = (
            re.compile("|".join(map(re.escape, looked_for.values()))) if looked_for else None
        )
        # most texts hold no keyword: when every keyword is caseless, that is told from the
        # text as it is (a quarter of the time squeezing it first takes)
        self._any_unsqueezed = (
            re.compile("|".join(map(_spread, looked_for.values())))
            if looked_for and all(_CASELESS.fullmatch(w) for w in looked_for.values())
            else None
        )

    def __getitem__(self, category: str) -> tuple[str, ...]:
        return self._by_category[category]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_category)

    def __len__(self) -> int:
        return len(self._by_category)

    def found_in(self, content: str) -> list[str]:
        """The keywords found in the content, in policy order, once each."""
        if self._any is None:
            return []
        if self._any_unsqueezed is not None and self._any_unsqueezed.search(content) is None:
            return []
        text = _squeeze(content)
        if self._any.search(text) is None:
            return []
        return [word for word, squeezed in self._looked_for if squeezed in text]


def sensitive_keywords_in(content: str, keywords: Mapping[str, Sequence[str]]) -> list[str]:
    """Art 27: the policy's keywords found in the content, in policy order, once each."""
    if not isinstance(keywords, SensitiveKeywords):
        keywords = SensitiveKeywords(keywords)
    return keywords.found_in(content)


# ---- Chinese text search --------------------------------------------------------------
#
# Intake's words are jieba's search-engine segmentation (cut_for_search, its hidden Markov
# model on) on jieba's default dictionary, computed by jieba-rs (rjieba), which carries the
# same dictionary and model at a fraction of the CPU (issue 12). Intake keeps an instance of
# its own: knowledge adds its domain words to jieba's global dictionary, which intake's words
# used to see in the embedded mode (one process) and not in the distributed one; now nothing
# else in the process changes intake's words, so a ticket gets the same words in both modes
# and a query the same words as the tickets it should find.
#
# jieba-rs differs from jieba in two ways, both undone below: its model keeps letters and
# digits joined by ., - or _ as one word (2-501, A-12345, 2026-01-15, www.tj.gov.cn, 1.5a)
# where jieba cuts them (2, -, 501), and it takes more characters for text than jieba (CJK
# extension A, compatibility ideographs), which gives those one by one. The words are then
# jieba's (tests/unit/intake/test_search_words.py), and the words stored with jieba need no
# re-indexing.

MAX_TERM_LENGTH = 32
# Words too common to narrow a search; dropped when indexing and when searching alike.
STOPWORDS = frozenset(
    "的 了 是 在 有 和 就 都 而 及 与 着 或 也 又 很 把 被 让 给 对 从 到 向 于 等 "
    "我 你 他 她 它 我们 你们 他们 这 那 这个 那个 请 吗 呢 吧 啊 呀 一个 没有".split()
)
# What jieba segments as text, each run on its own (jieba.re_han_default); it gives every
# other character as a word of its own.
_RUN = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)")
# How jieba's model cuts letters and digits: a decimal part and a per cent sign stay with
# them, nothing else does (jieba.finalseg.re_skip).
_ASCII_WORD = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")
_JOINER = re.compile(r"[._\-]")
# Between runs, jieba's words are single characters, a line break's two as one.
_OTHER = re.compile(r"\r\n|.", re.DOTALL)


@functools.cache
def _segmenter() -> Any:
    """Intake's own jieba-rs instance, on the default dictionary (about 25 MB, 0.1 s).
    Imported on first use: the console and the bench import this module for its
    constants, and rjieba loads a dictionary of its own as it is imported."""
    import rjieba

    return rjieba.Jieba()


def warm_up_segmenter() -> None:
    """Load the dictionary now (about 0.2 s), not on the first request."""
    _segmenter()


def _cut(run: str) -> list[str]:
    """``jieba.cut(run)`` (with its model) for a run of ``_RUN``: jieba-rs's words, with
    letters and digits it joined across ., - or _ cut again as jieba cuts them."""
    words: list[str] = _segmenter().cut(run, True)
    if not _JOINER.search(run):
        return words
    # only the model's words of letters, digits and connectors hold a joiner: no
    # dictionary word does
    return [
        part
        for word in words
        for part in (_ASCII_WORD.split(word) if _JOINER.search(word) else (word,))
        if part
    ]


def _search_words(run: str) -> list[str]:
    """``jieba.cut_for_search(run)``: each word of ``_cut`` after the 2- and
    3-character dictionary words inside it."""
    if not _JOINER.search(run):
        words: list[str] = _segmenter().cut_for_search(run, True)
        return words
    return [part for word in _cut(run) for part in (*_inner_words(word), word)]


def _words(text: str) -> Iterator[str]:
    """``jieba.cut(text)``."""
    for i, piece in enumerate(_RUN.split(text)):
        yield from _cut(piece) if i % 2 else _OTHER.findall(piece)


@functools.lru_cache(maxsize=65536)
def _searchable(token: str) -> str | None:
    """The term a token is indexed and searched by, or None (kept for the words that come
    again and again: a ticket's few dozen tokens are mostly common words)."""
    term = token.strip().lower()
    if (
        term
        and len(term) <= MAX_TERM_LENGTH
        and term not in STOPWORDS
        and any(ch.isalnum() for ch in term)
    ):
        return term
    return None


def search_terms(text: str) -> set[str]:
    """The words a ticket is found by: jieba's search-engine segmentation, which gives
    each word and the dictionary words inside it (劳动合同法 → 劳动, 合同, 劳动合同法),
    lower-cased, without punctuation and stopwords.

    The text's terms are the union of its runs' terms (``_RUN``), and a run that comes
    again (请尽快处理, 影响周边居民生活) is segmented once."""
    pieces = _RUN.split(text)
    # between the runs every character is a token of its own: all of them at once
    return set().union(_between_terms("".join(pieces[::2])), *map(_run_terms, pieces[1::2]))


@functools.lru_cache(maxsize=4096)
def _between_terms(between: str) -> frozenset[str]:
    """The search terms of the characters between a text's runs (``search_terms``), each
    a token of its own; kept for the texts that come again (a ticket's are mostly the same
    few punctuation marks)."""
    return frozenset(filter(None, map(_searchable, between)))


@functools.lru_cache(maxsize=16384)
def _run_terms(run: str) -> frozenset[str]:
    """The search terms of one run of text (``search_terms``). No dictionary in the key:
    intake's never changes. A run of digits and Chinese characters led by a number
    (4号楼1单元…, 17点6分…: a ticket's numbers make most of its runs new) is the union of
    its leading numbers' terms and its rest's (each kept), the rest segmented once for
    every number before it: in the e2e bench's tickets 0.96 segmentations a ticket, not
    2.40 (bench/search_terms.py)."""
    lead = _DIGIT_PIECES.match(run)
    if lead is not None:
        at = lead.end()
        if at == len(run) or _CHINESE.fullmatch(run, at) and "1号店" not in run:
            rest = _rest_terms(run[at:])
            if rest is not None:
                return rest | _lead_terms(run[:at])
    return _piece_terms(run)


@functools.lru_cache(maxsize=16384)
def _piece_terms(piece: str) -> frozenset[str]:
    """The search terms of a run, or of a piece of one, segmented as a whole."""
    return frozenset(filter(None, map(_searchable, _search_words(piece))))


# Cutting a run of digits and Chinese characters at the end of its leading pieces (digits,
# and single characters between digits: 17|点|6|分左右…) gives jieba's words of the whole run:
# no dictionary word holds a digit but 4S店, 4s店 and 1号店 (a run with 1号店 is cut whole),
# so no word of the dictionary spans a cut; every leading piece has one way through the
# dictionary (each digit, or the character, a step of its own), so the rest's best way is
# the whole run's from there on; and the characters jieba gathers between dictionary words
# (handed to its hidden Markov model unless they make a dictionary word) give the same words
# across a cut, as the model takes digits and Chinese apart — but when the rest's first
# such characters make a dictionary word: those the model might join (``_rest_terms``).
# tests/unit/intake/test_search_words.py holds the words to jieba's.
_DIGIT_PIECES = re.compile(r"(?:[0-9]+|[\u4E00-\u9FD5](?=[0-9]))+")
_DIGIT_PIECE = re.compile(r"[0-9]+|[\u4E00-\u9FD5]")
_CHINESE = re.compile(r"[\u4E00-\u9FD5][0-9\u4E00-\u9FD5]*")


@functools.lru_cache(maxsize=4096)
def _lead_terms(lead: str) -> frozenset[str]:
    """The search terms of a run's leading pieces (``_run_terms``), without segmenting:
    each is a word of its own (jieba's model keeps a number's digits together, and a
    character alone is one)."""
    return frozenset(filter(None, map(_searchable, _DIGIT_PIECE.findall(lead))))


@functools.lru_cache(maxsize=4096)
def _rest_terms(rest: str) -> frozenset[str] | None:
    """The search terms of the rest of a run after its leading pieces (``_run_terms``),
    or None when the run is to be cut whole: the rest begins with characters jieba's route
    gives one by one that make a dictionary word (the whole run hands them to the model
    with the digits before them, the rest alone as they are)."""
    if not rest:
        return frozenset()
    words = _search_words(rest)
    has_word = _segmenter().has_word
    leading = ""
    for word in words:
        if len(word) != 1:
            break
        leading += word
        if len(leading) > 1 and has_word(leading):
            return None
    return frozenset(filter(None, map(_searchable, words)))


def _inner_words(word: str) -> list[str]:
    """The 2- and 3-character dictionary words inside ``word``, as ``cut_for_search``
    indexes them."""
    has_word = _segmenter().has_word
    return [
        word[i : i + n]
        for n in (2, 3)
        if len(word) > n
        for i in range(len(word) - n + 1)
        if has_word(word[i : i + n])
    ]


def query_terms(text: str) -> set[str]:
    """The words a query needs, every one of them, in a ticket's ``search_terms``. A query
    word that its inner dictionary words cover is replaced by them: 劳动合同 finds a ticket
    about 劳动合同法, which was indexed as 劳动, 合同 and 劳动合同法 but not 劳动合同."""
    terms: set[str] = set()
    for token in _words(text):
        inner = _inner_words(token)
        covered = {
            i for part in inner for i in range(token.find(part), token.find(part) + len(part))
        }
        for word in inner if inner and len(covered) == len(token) else [token]:
            term = _searchable(word)
            if term:
                terms.add(term)
    return terms
