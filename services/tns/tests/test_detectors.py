"""Detectors against evasion attempts, and against the look-alikes they must leave alone."""

# ruff: noqa: RUF001  # full-width, Cyrillic and dash look-alikes are what these tests feed in

from __future__ import annotations

import re

import pytest

from services.tns.domain.detectors import (
    DETECTORS,
    KeywordIndex,
    check_term,
    detectors,
    find_bank_accounts,
    find_emails,
    find_links,
    find_phone_numbers,
)
from services.tns.domain.text import NormalizedText

_INDEX = KeywordIndex(
    {
        "drugs": ["大麻", "コカイン", "覚醒剤", "かくせいざい", "cocaine", "heroin", "meth", "mdma"],
        "insults": ["バカ", "!ばかり", "!やばか", "クズ", "!くずれ", "ass", "idiot", "kill yourself"],
        "payment": ["銀行振込", "振込", "bank transfer", "paypay", "!bank transfer fee"],
        "weapons": ["gun", "*coke*"],
    }
)


def _found(text: str) -> dict[str, tuple[str, ...]]:
    return _INDEX.find(NormalizedText(text))


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("大麻あります", "大麻"),
        ("大.麻", "大麻"),  # punctuation inserted
        ("大 麻", "大麻"),  # space inserted
        ("大\u200b麻", "大麻"),  # zero-width space inserted
        ("ｺｶｲﾝ", "コカイン"),  # half-width katakana
        ("こかいん", "コカイン"),  # hiragana for katakana
        ("コカいン", "コカイン"),  # mixed scripts
        ("コ・カ・イ・ン", "コカイン"),
        ("か.く.せ.い.ざ.い", "かくせいざい"),
        ("ＣＯＣＡＩＮＥ", "cocaine"),  # full-width Latin
        ("c0ca1ne", "cocaine"),  # leetspeak
        ("c o c a i n e", "cocaine"),  # spaced out
        ("c.o.c.a.i.n.e", "cocaine"),
        ("сосаine", "cocaine"),  # Cyrillic look-alikes
        ("MDMA錠", "mdma"),  # a Latin word next to Japanese
        ("pure heroins", "heroin"),  # plural
        ("meth!", "meth"),
    ],
)
def test_keywords_survive_evasion(text: str, term: str) -> None:
    """A listed term is found however it is spelled, spaced or scripted."""
    assert term in _found(text).get("drugs", ())


@pytest.mark.parametrize(
    "text",
    [
        "the class is over",  # "ass" inside a word
        "a classic bass guitar",
        "you begun it",  # "gun" inside a word
        "the heroine wins",  # "heroin" + e is another word
        "something methods",  # "meth" inside words
        "たいまつ",  # not 大麻
        "ヒロイン",
    ],
)
def test_latin_terms_match_whole_words_only(text: str) -> None:
    """Short Latin terms do not fire inside longer words."""
    assert _found(text) == {}


def test_star_lets_letters_touch_a_latin_term() -> None:
    """A term written *coke* matches inside a longer word."""
    assert _found("nosecoke")["weapons"] == ("*coke*",)


def test_exception_phrases_shield_the_terms_inside_them() -> None:
    """'!ばかり' keeps バカ from firing on ばかり, and a shield reaches back over its start."""
    assert "insults" not in _found("こればかりは")
    assert "insults" not in _found("やばかった")
    assert "insults" not in _found("型くずれなし")
    assert _found("バカじゃないの")["insults"] == ("バカ",)
    assert _found("バカ、こればかり")["insults"] == ("バカ",)


def test_exceptions_are_per_list() -> None:
    """An exception of one list does not hide the terms of another."""
    assert "payment" not in _found("a bank transfer fee applies")
    index = KeywordIndex({"a": ["バカ", "!ばかり"], "b": ["ばか"]})
    assert index.find(NormalizedText("ばかり")) == {"b": ("ばか",)}


def test_a_match_counts_for_every_term_inside_it() -> None:
    """銀行振込 is also 振込: both terms are reported, for every list holding them."""
    assert _found("銀行振込でお願いします")["payment"] == ("銀行振込", "振込")


def test_phrases_match_with_any_separator_or_none() -> None:
    """A multi-word Latin term matches with spaces, punctuation or nothing between words."""
    for text in ("please kill yourself", "killyourself", "kill-your-self", "k1ll y0urself"):
        assert _found(text)["insults"] == ("kill yourself",), text


def test_terms_report_their_spelling_in_the_list() -> None:
    """Evidence shows the term as the list writes it, not its normalized form."""
    assert _found("PAYPAY OK")["payment"] == ("paypay",)
    assert _found("ｺｶｲﾝ")["drugs"] == ("コカイン",)


@pytest.mark.parametrize(
    ("term", "problem"),
    [
        ("x", "a Latin term needs at least 2 letters or digits"),
        ("殺", "a term needs at least 2 characters once spaces and punctuation are removed"),
        ("・ ・", "a term needs at least 2 characters once spaces and punctuation are removed"),
        ("*大麻", "'*' applies to Latin terms only; Japanese terms always match anywhere"),
    ],
)
def test_check_term_explains_unusable_terms(term: str, problem: str) -> None:
    """Terms too short to be meaningful, or misusing '*', are rejected with a reason."""
    assert check_term(term) == problem


def test_check_term_accepts_ordinary_terms() -> None:
    """Japanese, Latin, mixed and exception terms compile."""
    for term in ("大麻", "cocaine", "n級品", "1:1 copy", "!ばかり", "*coke"):
        assert check_term(term) is None, term


_PHONES = [
    "090-1234-5678",
    "09012345678",
    "電話は090 1234 5678です",
    "０９０ １２３４ ５６７８",  # full-width digits and space
    "０９０ー１２３４ー５６７８",  # long-vowel marks as dashes
    "090−1234−5678",  # minus signs
    "0 9 0 1 2 3 4 5 6 7 8",  # spaced out
    "0.9.0.1.2.3.4.5.6.7.8",
    "〇九〇一二三四五六七八",  # kanji numerals
    "〇九〇の一二三四の五六七八",  # read out, with の
    "O9O-l234-5678",  # letters for digits
    "tel:090.1234.5678",
]


@pytest.mark.parametrize("text", _PHONES)
def test_phone_numbers_are_found_however_written(text: str) -> None:
    """A Japanese mobile number is found in every spelling, and reported masked."""
    matches = find_phone_numbers(NormalizedText(text))
    assert [match.evidence for match in matches] == ["phone number ***5678"]


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("03-1234-5678", "phone number ***5678"),  # Tokyo landline
        ("(03) 1234-5678", "phone number ***5678"),
        ("0120-123-456", "phone number ***3456"),  # toll free
        ("+81 90 1234 5678", "phone number ***5678"),
        ("+81-3-1234-5678", "phone number ***5678"),
        ("+1 415 555 2671", "phone number ***2671"),
        ("＋４４ ２０ ７９４６ ０９５８", "phone number ***0958"),
    ],
)
def test_landline_and_international_numbers_are_found(text: str, evidence: str) -> None:
    """Landlines, toll-free and +country numbers are phone numbers too."""
    assert [match.evidence for match in find_phone_numbers(NormalizedText(text))] == [evidence]


@pytest.mark.parametrize(
    "text",
    [
        "my number is 310.555.3742",
        "Call (702) 555-3742",
        "ｍｙ　ｎｕｍｂｅｒ　ｉｓ　９１７－５５５－３７４２",
        "text me 415-555-3742",
    ],
)
def test_north_american_numbers_are_found_after_a_phone_word(text: str) -> None:
    """A 3-3-4 number written with dashes, dots or brackets, after a word about phones, is found."""
    assert [match.evidence for match in find_phone_numbers(NormalizedText(text))] == ["phone number ***3742"]


@pytest.mark.parametrize(
    "text",
    [
        "size 250-300-1000",  # no word about phones
        "call 300-500-1000円",  # a price
        "415 555 3742 pieces",  # spaces only
    ],
)
def test_three_groups_of_digits_are_not_always_a_phone(text: str) -> None:
    """Without a phone word, or written as a price, a 3-3-4 number is not reported."""
    assert find_phone_numbers(NormalizedText(text)) == ()


@pytest.mark.parametrize(
    "text",
    [
        "¥12,000",
        "価格 1,200,000円",
        "2026年12月1日発送",
        "2026/12/01 09:00",
        "期間 2026.01.05 2026.02.05",
        "注文番号 0901234567890",  # 13 digits: not a phone number
        "JAN 4901234567894",
        "3個で500円、5個で800円",
        "iPhone 15 Pro 256GB",
        "サイズ 23.5cm 重さ 1200g",
        "二〇二六年一二月一日",
    ],
)
def test_prices_dates_and_codes_are_not_phone_numbers(text: str) -> None:
    """Numbers that are not phone numbers stay unreported."""
    assert find_phone_numbers(NormalizedText(text)) == ()


def test_phone_evidence_never_holds_the_number() -> None:
    """Evidence keeps the last four digits only."""
    (match,) = find_phone_numbers(NormalizedText("090-1234-5678"))
    assert "1234" not in match.evidence
    assert "090" not in match.evidence


@pytest.mark.parametrize(
    "text",
    [
        "please transfer the money to my bank account 1234567",
        "Bank: MUFG, branch 123, acct no. 1234567",
        "三井住友銀行 新宿支店 普通 1234567",
        "普通 １２３４５６７",  # full-width digits right after 普通
        "口座番号：一二三四五六七",  # kanji numerals
        "口座 1 2 3 4 5 6 7 に振り込んで",  # spaced out
        "振込先 ゆうちょ 12345-12345671",  # Japan Post symbol and number
        "ﾌﾘｺﾐ先 口座 〇一二三四五六",
    ],
)
def test_bank_accounts_are_found_near_bank_words(text: str) -> None:
    """An account number near a word about banks is found, however written."""
    matches = find_bank_accounts(NormalizedText(text))
    assert len(matches) == 1
    assert matches[0].evidence.startswith("bank account number ***")


@pytest.mark.parametrize(
    "text",
    [
        "Shipping resumes after the bank holiday. Order 1234567 ships Monday.",
        "普通郵便で発送します。追跡番号 1234567",
        "価格 1,234,567円 銀行振込可",  # a price, in yen
        "銀行振込 ¥1234567",
        "振込期限 20261201",  # a date
        "口座振替 手数料 1234567円",
        "TEL 090-1234-5678 銀行振込のみ",  # a phone number
        "在庫 1234567 点",
        "account created 2026, 12 items",
        "お振込は3日以内にお願いします",
    ],
)
def test_prices_dates_and_order_numbers_are_not_accounts(text: str) -> None:
    """Numbers near bank words that are prices, dates, phones or order numbers are not accounts."""
    assert find_bank_accounts(NormalizedText(text)) == ()


def test_account_evidence_never_holds_the_number() -> None:
    """Evidence keeps the last four digits only."""
    (match,) = find_bank_accounts(NormalizedText("口座番号 9876543"))
    assert match.evidence == "bank account number ***6543"


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("name@example.com", "example.com"),
        ("ｎａｍｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"),  # full width
        ("name @ example . com", "example.com"),  # spaced
        ("name at example dot com", "example.com"),  # spelled out
        ("name (at) example (dot) com", "example.com"),
        ("name [at] example [dot] com", "example.com"),
        ("name(at)example.com", "example.com"),
        ("abc★gmail.com", "gmail.com"),  # a star for the @
        ("連絡先abc123アットgmail", "gmail"),  # katakana "at", a bare provider
        ("連絡先abc123あっとgmail.com", "gmail.com"),
        ("name@gmail", "gmail"),
        ("x.y+z@sub.example.co.jp", "sub.example.co.jp"),
        ("mail: name@example。com", "example.com"),  # ideographic full stop
    ],
)
def test_emails_are_found_however_obfuscated(text: str, domain: str) -> None:
    """E-mail addresses are found spelled out or with stand-ins, the local part masked."""
    assert [match.evidence for match in find_emails(NormalizedText(text))] == [f"e-mail address ***@{domain}"]


@pytest.mark.parametrize(
    "text",
    [
        "look at this",
        "meet at the station",
        "ship at 3pm",
        "I'm at home. ok",
        "@handle only",
        "price ¥1000@each",
    ],
)
def test_ordinary_at_is_not_an_email(text: str) -> None:
    """The word 'at' in a sentence is not an e-mail address."""
    assert find_emails(NormalizedText(text)) == ()


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("https://example.com/x", "link to example.com"),
        ("ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ", "link to example.com"),  # full width
        ("ttps://example.com", "link to example.com"),  # the h dropped to dodge filters
        ("hxxp://evil.example.net", "link to evil.example.net"),
        ("www.example.jp", "link to example.jp"),
        ("詳しくはexample.comへ", "link to example.com"),  # a bare domain
        ("example。com", "link to example.com"),
        ("shop.example.co.jp", "link to shop.example.co.jp"),  # one finding, not one per TLD-like label
        ("example (dot) com", "link to example.com"),
        ("line.me/ti/p/abc", "link to line.me"),
        ("LINE ID: abc123", "LINE id"),
        ("ラインID教えて", "LINE id"),
        ("ライン交換しましょう", "LINE id"),
        ("ＬＩＮＥで連絡ください", "LINE id"),
        ("インスタ @abc_123 までDM", "messenger handle @ab***"),
        ("@abc_123 (instagram)", "messenger handle @ab***"),
    ],
)
def test_links_and_messenger_ids_are_found(text: str, evidence: str) -> None:
    """Links, LINE ids and messenger handles are found in their usual disguises."""
    assert evidence in [match.evidence for match in find_links(NormalizedText(text))]


@pytest.mark.parametrize(
    "text",
    [
        "詳しくはLineでお話しできればと思います。ID: emily76",
        "インスタで「rio_71」検索してね",
        "L I N E追加して→emily_779",
        "my LINE is emily4214",
        "Questions: Snapchat taro.527",
        "search mika_6150 on Instagram",
        "Questions also on Signal: mika500",
        "More details on Twitter (kenji851)",
        "※詳細はX（旧Twitter）（mika641）にて",
        "LINEのIDはmika.3011だよ",
        "add me on Ｓｎａｐｃｈａｔ: mika.38",
        "ＬＩＮＥでも受け付けます。ID @yuki_89",
    ],
)
def test_messenger_ids_without_at_are_found(text: str) -> None:
    """An id given right after a messenger's name is found, with or without @, and masked."""
    evidence = [match.evidence for match in find_links(NormalizedText(text))]
    assert any(item.startswith("messenger id ") and item.endswith("***") for item in evidence), evidence


@pytest.mark.parametrize(
    "text",
    [
        "LINE対応 iPhone13 ID不要",
        "Instagramで話題のiPhone15ケース",
        "instagram v2.0 update",
        "signal strength good, model ABC123",
        "neckline 12.5cm",
        "Co., Ltd. 2026",
        "オンラインショップで購入",
        "ラインストーン付き",
        "ボディラインが綺麗です",
        "Node.js入門",
        "ver.2.0 3.5mm",
        "e.g. this one",
        "guidelines apply",
        "name@example.com",  # an e-mail address, reported by its own detector
        "Mr.Children CD",
    ],
)
def test_look_alikes_are_not_links(text: str) -> None:
    """Words containing 'line', versions and file names are not links."""
    assert find_links(NormalizedText(text)) == ()


def test_a_domain_is_reported_once_whatever_its_labels() -> None:
    """Labels that look like TLDs inside a domain (co, shop) do not make more findings."""
    evidence = [match.evidence for match in find_links(NormalizedText("www.shop.example.co.jp"))]
    assert evidence == ["link to shop.example.co.jp"]


def test_allowed_domains_are_not_reported() -> None:
    """Links to the marketplace's own domain, or below it, are not off-platform."""
    allowed = frozenset({"furima.jp"})
    assert find_links(NormalizedText("https://furima.jp/item/1 www.shop.furima.jp"), allowed) == ()
    assert find_links(NormalizedText("https://notfurima.jp"), allowed) != ()


def test_detectors_cover_every_detector_name() -> None:
    """The mapping rules use holds every documented detector."""
    assert set(detectors()) == set(DETECTORS)


@pytest.mark.parametrize("text", _PHONES)
def test_no_detector_echoes_a_phone_number(text: str) -> None:
    """No detector's evidence contains seven consecutive digits of the text."""
    normalized = NormalizedText(text)
    for detector in detectors().values():
        for match in detector(normalized):
            assert not re.search(r"\d{5}", match.evidence)
