"""Detectors: what a text contains that a rule can ask about, found on its normalized views.

- `KeywordIndex` (compiled in `rules_keywords`, re-exported here) matches named keyword
  lists, whatever the script, spacing, punctuation or leetspeak.
- `find_phone_numbers`, `find_bank_accounts`, `find_emails` and `find_links` look for
  off-platform contact and payment details, however they are spelled.

Every `Match` carries evidence a moderator can read without seeing the detail itself
(``"phone number ***5678"``): evidence is stored with decisions and shown to reviewers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.tns.domain.rules_keywords import KeywordIndex, check_term
from services.tns.domain.text import NormalizedText, fold_kana

__all__ = [
    "DETECTORS",
    "Detector",
    "KeywordIndex",
    "Match",
    "check_term",
    "detectors",
    "find_bank_accounts",
    "find_emails",
    "find_links",
    "find_phone_numbers",
]


@dataclass(frozen=True, slots=True)
class Match:
    """One finding of a detector, described without the sensitive part."""

    detector: str
    evidence: str


Detector = Callable[[NormalizedText], tuple[Match, ...]]

# ---------------------------------------------------------------------------------------
# Phone numbers and bank accounts (on the digits view). Each pattern starts with a
# character class or a literal, so the regex engine skips in C to where a match can start.

# Runs of digits with a few separators between them: "090-1234-5678", "0 9 0 1 2 3 ...",
# "〇九〇の一二三四の..." (の is how a number is read out).
# (\u2010-\u2015: hyphens and dashes; \u2212: minus; \u2500: box-drawing line.)
_PHONE_CHAIN = re.compile(r"\d(?:[\s\-\u2010-\u2015\u2212ー\u2500.()_・,、*~〜の]{0,3}\d)*")
_PLUS_BEFORE = re.compile(r"\+[\s(]*$")
_GROUP = re.compile(r"\d+")
_JP_PHONE = re.compile(r"0[1-9]\d{8}|0[5789]0\d{8}|0800\d{7}")
# 415-555-2671, (415) 555-2671, 415.555.2671: written with these separators only, and
# after a word about phones ("call", "my number is"), since three groups of digits are as
# often sizes or model numbers.
_NORTH_AMERICAN = re.compile(r"(?<![\d.\-])([2-9]\d\d)(?:\)\s?|[\-.])([2-9]\d\d)[\-.](\d{4})(?![\d.\-]\d)")
_NOT_PHONE_AFTER = re.compile(r"\s*(?:円|yen|jpy|個|点|件|枚|cm|mm|kg|g\b)")
_PHONE_WORD = re.compile(r"call|text|phone|number|tel|cell|mobile|whatsapp|contact|reach|電話|番号|連絡|☎")


def _mask(digits: str) -> str:
    return "***" + digits[-4:]


def _international(chain: str) -> Iterable[str]:
    number = "".join(_GROUP.findall(chain))
    if number.startswith("81"):  # +81 90-1234-5678, +81 (0)90-...
        national = number[2:] if number[2:3] == "0" else "0" + number[2:]
        if _JP_PHONE.fullmatch(national):
            yield national
    elif 8 <= len(number) <= 15:
        yield number


def _domestic(chain: str) -> Iterable[str]:
    spans = [(m.start(), m.group()) for m in _GROUP.finditer(chain)]
    i = 0
    while i < len(spans):
        start, group = spans[i]
        # A number starts where the chain starts or after a space: "2026.01.05 2026.02.05"
        # holds "0105202602" across dots, which is a pair of dates, not a phone number.
        if group[0] == "0" and (start == 0 or chain[start - 1].isspace()):
            number, longest = "", None
            for j in range(i, len(spans)):
                number += spans[j][1]
                if len(number) > 11:
                    break
                if len(number) >= 10 and _JP_PHONE.fullmatch(number):
                    longest = (number, j)  # keep going: "0 9 0 1 2 3 4 5 6 7 8" has 11 digits
            if longest is not None:
                yield longest[0]
                i = longest[1]
        i += 1


def find_phone_numbers(text: NormalizedText) -> tuple[Match, ...]:
    """Japanese, North American and international phone numbers, however digits are
    written or spaced.
    """
    view = text.digits
    matches: list[Match] = []
    for chain in _PHONE_CHAIN.finditer(view):
        if len(chain.group()) < 8:  # too short for any phone number: most chains stop here
            continue
        if _PLUS_BEFORE.search(view, max(0, chain.start() - 3), chain.start()):
            numbers = list(_international(chain.group()))
        else:
            numbers = list(_domestic(chain.group()))
            north_american = _NORTH_AMERICAN.search(chain.group())
            if (
                not numbers
                and north_american
                and _PHONE_WORD.search(view, max(0, chain.start() - 30), chain.start())
                and not _NOT_PHONE_AFTER.match(view, chain.end())
            ):
                numbers = ["".join(north_american.groups())]
        matches.extend(Match("phone", f"phone number {_mask(number)}") for number in numbers)
    return tuple(matches)


_ACCOUNT_CHAIN = re.compile(r"\d(?:[ \-\u2010-\u2015\u2212ー.]{0,2}\d)*")
_BANK_WORDS = re.compile(
    r"口座|銀行|支店|振込|振り込|ふりこみ|預金|名義|ゆうちょ|信金|信用金庫|労金|"
    r"bank(?![\W_]*holiday)|account|acct|a/c|branch|routing|iban|swift|sort code"
)
# 普通/当座 (ordinary/current account) are everyday words too ("普通郵便"): they count only
# right before the number.
_ACCOUNT_TYPE = re.compile(r"普通|当座|ふつう|とうざ")
_ACCOUNT_TYPE_BEFORE = re.compile(r"(?:普通|当座|ふつう|とうざ)[\s:・]*$")
_NOT_ACCOUNT_BEFORE = re.compile(
    r"(?:[¥$€£]|注文|追跡|伝票|問い?合わ?せ|型番|品番|商品|会員|お客様|郵便|〒|"
    r"order|tracking|model|serial|jan|isbn|sku|item|invoice|ref)[^\d]{0,8}$"
)
_NOT_ACCOUNT_AFTER = re.compile(r"\s*(?:円|yen|jpy|個|点|件|枚|名|人|回|%|年|月|日|時|分|秒|cm|mm|kg|ml|pcs)")
_DATE = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


def _is_account_number(groups: list[str]) -> bool:
    number = "".join(groups)
    if _JP_PHONE.fullmatch(number) or _DATE.fullmatch(number):
        return False
    # 7 digits (banks), 8 (Japan Post numbers), or branch/symbol + account: "123-1234567".
    return len(number) in (7, 8) or (len(groups[-1]) in (7, 8) and len(number) <= 15)


def find_bank_accounts(text: NormalizedText) -> tuple[Match, ...]:
    """Bank account numbers: 7-8 digits, however spelled, near words about banks."""
    if not _BANK_WORDS.search(text.plain) and not _ACCOUNT_TYPE.search(text.plain):
        return ()  # most texts mention no bank: skip the scan of every number
    view = text.digits
    matches: list[Match] = []
    for chain in _ACCOUNT_CHAIN.finditer(view):
        if len(chain.group()) < 7:
            continue
        groups = _GROUP.findall(chain.group())
        if not _is_account_number(groups):
            continue
        start, end = chain.span()
        before = view[max(0, start - 16) : start]
        if _NOT_ACCOUNT_BEFORE.search(before) or _NOT_ACCOUNT_AFTER.match(view, end):
            continue
        if _ACCOUNT_TYPE_BEFORE.search(before) or _BANK_WORDS.search(view, max(0, start - 40), end + 40):
            matches.append(Match("bank_account", f"bank account number {_mask(''.join(groups))}"))
    return tuple(matches)


# ---------------------------------------------------------------------------------------
# E-mail addresses, links and messenger ids (on the plain view)

_TLDS = (
    "com|net|org|info|biz|jp|co|io|me|ly|gl|to|cc|tv|app|dev|page|link|site|online|shop|store|"
    "xyz|top|club|us|uk|cn|ru|kr|tw|hk|de|fr|ws|gg|tk"
)
_TLD_SET = frozenset(_TLDS.split("|"))
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")
_MAIL_PROVIDERS = frozenset(
    ("gmail", "googlemail", "yahoo", "ymail", "icloud", "outlook", "hotmail", "msn", "aol", "protonmail")  # noqa: RUF005  # two lines read better than one of 140 characters
    + ("docomo", "ezweb", "softbank", "nifty", "biglobe")
)
# An "@" or what stands for it: a symbol (★), a bracketed "(at)", or the word ("at", アット).
# The first character is a class, so the search skips in C to the few places it can start.
_AT = re.compile(
    fold_kana(
        r"[@★☆(\[{<\sア](?:(?<=[@★☆])|(?<=[(\[{<])\s*(?:at|a|@)\s*[)\]}>]"
        r"|(?<=\s)(?P<word>at)(?=\s)|(?<=ア)(?P<katakana>ット)(?:マーク)?)"
    )
)
_LOCAL_PART = re.compile(r"[a-z0-9][a-z0-9._%+\-]*\s*\Z")
_DOT = fold_kana(r"\s*[.。・]\s*|\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+|\s*ドット\s*")
_DOMAIN = re.compile(rf"\s*([a-z0-9\-]+(?:(?:{_DOT})[a-z0-9\-]+)*)")
_DOT_SPLIT = re.compile(_DOT)


def find_emails(text: NormalizedText) -> tuple[Match, ...]:
    """E-mail addresses, also written ``name at example dot com`` or ``name★gmail``."""
    view = text.plain
    matches: list[Match] = []
    for at in _AT.finditer(view):
        # The address around the "@": a local part right before it, a domain right after.
        start = at.start() + 1 if at.group("word") else at.start()
        local = _LOCAL_PART.search(view, max(0, start - 64), start)
        domain = _DOMAIN.match(view, at.end())
        if local is None or domain is None or (local.start() and view[local.start() - 1] in _LOCAL_CHARS):
            continue
        labels = [label for label in _DOT_SPLIT.split(domain.group(1)) if label]
        provider = labels[0] in _MAIL_PROVIDERS
        if not (at.group("word") or at.group("katakana")):  # an @ or a stand-in symbol: any TLD
            ok = provider or (len(labels) >= 2 and labels[-1].isalpha() and len(labels[-1]) >= 2)
        else:  # "at" in words: only well-known endings, or "look at this" would count
            ok = provider or (len(labels) >= 2 and labels[-1] in _TLD_SET)
        if ok:
            matches.append(Match("email", f"e-mail address ***@{'.'.join(labels)}"))
    return tuple(matches)


_SCHEME = re.compile(r"(?:h\s*)?(?:t\s*t|x\s*x)\s*p\s*s?\s*:\s*/\s*/\s*(?P<host>[a-z0-9\-.]*)")
# A bare domain is found from its end, the dot and a known TLD (rare in a text, and a
# literal the engine scans for quickly), then read backwards label by label.
_DOMAIN_END = re.compile(rf"[.。)]\s*(?P<tld>{_TLDS})(?![a-z0-9\-]|[.。][a-z0-9])")  # the last label only
_LABELS_BEFORE = re.compile(r"[a-z0-9][a-z0-9\-]*(?:(?:\.|。|\s*\(dot\)\s*)[a-z0-9][a-z0-9\-]*)*(?:\s*\(dot)?\Z")
_WWW = re.compile(r"www(?<![a-z0-9]www)\s*[.。]\s*(?P<host>[a-z0-9\-]+(?:[.。][a-z0-9\-]+)*)")
_LINE_ID = re.compile(
    fold_kana(
        r"(?:line(?<![a-z]line)|ライン(?<!オンライン)(?<!オフライン))"
        r"\s*(?::\s*@?[a-z0-9._\-]{3,}|id|アイディ|"
        r"(?:で|に|の|を|から)?\s*(?:交換|追加|連絡|友達|友だち|ともだち|登録|やり[と取]り|つなが|繋が))"
    )
)
_APPS = fold_kana(
    r"instagram|insta|インスタ|twitter|ツイッター|tiktok|ティックトック|telegram|テレグラム|whatsapp|"
    r"wechat|kakao|カカオ|discord|ディスコード|skype|signal|snapchat|facebook|dm|連絡|フォロー|follow"
)
_HANDLE = re.compile(
    rf"(?:{_APPS})[^\n@]{{0,20}}?(?<![a-z0-9.])@(?P<handle>[a-z0-9._]{{3,30}})"
    rf"|@(?<![a-z0-9.]@)(?P<handle2>[a-z0-9._]{{3,30}})[^\n@]{{0,20}}?(?:{_APPS})"
)
# An id with no @, given right after a messenger's name: "my LINE is emily4214",
# "Snapchat: mika.38", "インスタで「rio_71」検索", "LINEのIDはmika.3011", "search yuki_84 on
# Discord". An id here has a digit, "_" or "." in it, so ordinary words do not count.
_MESSENGER_NAMES = (
    "instagram", "insta", "ig", "インスタ", "twitter", "ツイッター", "tiktok", "ティックトック", "telegram",
    "テレグラム", "whatsapp", "wechat", "kakaotalk", "kakao", "カカオトーク", "カカオ", "discord",
    "ディスコード", "skype", "snapchat", "signal", "line", "l i n e", "ライン",
)  # fmt: skip


def _names_regex(names: Iterable[str]) -> str:
    """An alternation of names, those sharing a first character in one branch (the engine
    tries branches one by one), each checked for a letter before it once matched (a
    lookbehind first would cost the engine its fast scan for the first character).
    """
    by_first: dict[str, list[str]] = {}
    for name in sorted(map(fold_kana, names), key=len, reverse=True):  # longest first
        by_first.setdefault(name[0], []).append(name)
    return "|".join(
        re.escape(first) + "(?:" + "|".join(f"{re.escape(n[1:])}(?<![a-z]{re.escape(n)})" for n in group) + ")"
        for first, group in by_first.items()
    )


_MESSENGERS = _names_regex(_MESSENGER_NAMES)
_ID = r"[a-z]{2}[a-z0-9]*[0-9._][a-z0-9._]*(?![a-z0-9@])"
_MESSENGER_ID = re.compile(
    rf"(?:{_MESSENGERS})(?![a-z])(?:[^\n]{{0,8}}?(?:[:=→]|\bid\b|\bis\b|は|「|\()|\s"
    rf"|[^\n]{{0,30}}?\bid\b[\s:は]*@?)\s*(?P<id>{_ID})"
)
_SEARCH_ID = re.compile(rf"search\s+(?P<id>{_ID})\s+on\s+(?:{_MESSENGERS})(?![a-z])")
_HOST_DOT = re.compile(r"\s*(?:。|\(dot\))\s*")


def _host_name(raw: str) -> str:
    host = _HOST_DOT.sub(".", raw).strip(".")
    return host.removeprefix("www.")


def find_links(text: NormalizedText, allowed_domains: frozenset[str] = frozenset()) -> tuple[Match, ...]:
    """Links (``https://``, ``www.``, bare domains), LINE ids and messenger handles.

    Hosts in ``allowed_domains`` (or under them) are the marketplace's own: not reported.
    """
    view = text.plain
    hosts: list[str] = []
    # Cheap substring checks first: most texts hold no link at all.
    if "/" in view:
        hosts.extend(_host_name(found.group("host")) for found in _SCHEME.finditer(view))
    if "www" in view:
        hosts.extend(_host_name(found.group("host")) for found in _WWW.finditer(view))
    for end in _DOMAIN_END.finditer(view):
        labels = _LABELS_BEFORE.search(view, max(0, end.start() - 100), end.start())
        if labels is not None and (labels.start() == 0 or view[labels.start() - 1] not in "@.-"):
            hosts.append(_host_name(labels.group().removesuffix("(dot").rstrip() + "." + end.group("tld")))
    matches = [
        Match("url", f"link to {host or 'a web address'}")
        for host in dict.fromkeys(hosts)  # one finding per host, in order
        if not any(host == domain or host.endswith("." + domain) for domain in allowed_domains)
    ]
    if _LINE_ID.search(view):
        matches.append(Match("url", "LINE id"))
    if "@" in view:
        for found in _HANDLE.finditer(view):
            handle = found.group("handle") or found.group("handle2")
            matches.append(Match("url", f"messenger handle @{handle[:2]}***"))
    for pattern in (_MESSENGER_ID, _SEARCH_ID):
        matches.extend(Match("url", f"messenger id {found.group('id')[:2]}***") for found in pattern.finditer(view))
    return tuple(matches)


DETECTORS: tuple[str, ...] = ("phone", "bank_account", "email", "url")
"""The detector names a rule can use."""


def detectors(allowed_domains: frozenset[str] = frozenset()) -> dict[str, Detector]:
    """Detector name → detector, links checked against ``allowed_domains``."""
    return {
        "phone": find_phone_numbers,
        "bank_account": find_bank_accounts,
        "email": find_emails,
        "url": lambda text: find_links(text, allowed_domains),
    }
