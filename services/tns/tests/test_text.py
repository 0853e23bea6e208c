"""Text normalization: each view undoes the evasions it is meant to, and nothing more."""

# ruff: noqa: RUF001  # full-width, Cyrillic and dash look-alikes are what these tests feed in

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tns.domain import text as text_module
from services.tns.domain.text import NormalizedText, compact, digits, fold, fold_kana, kanji_to_digits, latin

# Characters evasions are made of: kana of both scripts and widths, combining marks,
# full-width forms, invisibles, look-alikes, digits, kanji numerals and separators.
_TRICKY = st.text(
    st.sampled_from(
        list("アイウカガキッャーｱｶﾞｯｰﾟﾞあいかがっゃゎゖ\u3099\u309a\u309b\u309cヽヾ")
        + list("ＡＢｃ０１２＠．：（）　\u200b\u00ad\ufe0fаосÅé\u0301e")
        + list("〇一二三十百千万零壱abcXYZ019 .-_・/@$!|①㎝ﾟ")
    ),
    max_size=40,
)


def _reference_fold(value: str) -> str:
    """`fold` the slow, obvious way: whole-string NFKC and translate, until stable."""
    table: dict[int, int | None] = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}
    table |= {0x30FD: 0x309D, 0x30FE: 0x309E, 0x3099: None, 0x309A: None}
    table |= str.maketrans("аеіјкмнорсухѕԁɡαβεικνορτυχı", "aeijkmhopcyxsdgabeikvoptuxi")
    result = text_module._INVISIBLE.sub("", value)
    while True:
        folded = unicodedata.normalize("NFKC", result).casefold().translate(table)
        if folded == result:
            return result
        result = folded


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＣＯＣＡＩＮＥ", "cocaine"),  # full-width Latin
        ("０９０", "090"),  # full-width digits
        ("ｺｶｲﾝ", "こかいん"),  # half-width katakana
        ("コカイン", "こかいん"),  # katakana → hiragana
        ("コカいン", "こかいん"),  # mixed scripts in one word
        ("ｽｰﾊﾟｰｺﾋﾟｰ", "すーぱーこぴー"),  # half-width voiced marks compose
        ("сосаine", "cocaine"),  # Cyrillic look-alikes
        ("大\u200b麻", "大麻"),  # zero-width space
        ("co\u00adcaine", "cocaine"),  # soft hyphen
        ("Straße", "strasse"),  # casefold, not just lower
        ("か\u3099", "が"),  # a decomposed dakuten composes onto its base
        ("カﾞ", "が"),  # a half-width dakuten after a full-width kana
        ("ウﾞ", "ゔ"),
    ],
)
def test_fold_undoes_width_script_case_and_invisible_tricks(raw: str, expected: str) -> None:
    """Fold maps full-width, half-width, katakana, look-alikes and invisibles to one form."""
    assert fold(raw) == expected


@settings(max_examples=2000)
@given(_TRICKY)
def test_fold_matches_the_slow_reference_on_tricky_text(value: str) -> None:
    """The fast paths of fold (run-wise NFKC, cached kana runs) change nothing."""
    assert fold(value) == _reference_fold(value)


@given(st.text(max_size=60))
def test_fold_matches_the_slow_reference_on_any_text(value: str) -> None:
    """Fold equals whole-string normalization on arbitrary Unicode."""
    assert fold(value) == _reference_fold(value)


@given(st.one_of(_TRICKY, st.text(max_size=60)))
def test_fold_is_idempotent(value: str) -> None:
    """Folding folded text changes nothing: terms and texts meet at a fixed point."""
    assert fold(fold(value)) == fold(value)


@given(st.one_of(_TRICKY, st.text(max_size=60)))
def test_compact_is_idempotent(value: str) -> None:
    """Compacting a compact text changes nothing."""
    once = compact(fold(value))
    assert compact(once) == once


def test_nfkc_safe_characters_are_safe() -> None:
    """Every character the fast NFKC path skips is stable, non-combining, and never the
    second half of a composition, so skipping it cannot change the result.
    """
    safe = [
        chr(code) for code in range(sys.maxunicode + 1) if text_module._NFKC_UNSAFE_RUN.fullmatch(chr(code)) is None
    ]
    seconds: set[str] = set()
    for code in range(sys.maxunicode + 1):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) == 2:
            seconds.add(chr(int(decomposition.split()[1], 16)))
    for char in safe:
        assert unicodedata.is_normalized("NFKC", char), hex(ord(char))
        assert not unicodedata.combining(char), hex(ord(char))
        assert char not in seconds, hex(ord(char))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("か.い.せ.い", "かいせい"),  # punctuation inserted
        ("か い せ い", "かいせい"),  # spaces inserted
        ("か・い・せ・い", "かいせい"),  # middle dots
        ("スーパー・コピー", "すぱこぴ"),  # long-vowel marks and dots
        ("ｽｰﾊﾟｰｺﾋﾟｰ", "すぱこぴ"),
        ("シャブ", "しやぶ"),  # small kana written large
        ("大🌿麻", "大麻"),  # an emoji in the middle
        ("n級_品", "n級品"),
    ],
)
def test_compact_removes_what_is_inserted_between_letters(raw: str, expected: str) -> None:
    """Compact drops spaces, punctuation, symbols and ー, and writes small kana large."""
    assert NormalizedText(raw).compact == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("c o c a i n e", "cocaine"),  # spaced out
        ("c.o.c.a.i.n.e here", "cocaine here"),
        ("ｃ ｏ ｃ ａ ｉ ｎ ｅ", "cocaine"),  # full-width and spaced
        ("c0ca1ne", "cocaine"),  # leetspeak inside a word
        ("5hit", "shit"),  # at its start
        ("h3ll0", "heiio"),  # one character at its end (l is written i)
        ("co-caine", "cocaine"),  # punctuation inside a word
        ("don't", "dont"),
        ("the class", "the ciass"),  # words stay words
        ("glock19 iphone15", "giock19 iphone15"),  # model numbers keep their digits
        ("I am a big fan", "i am a big fan"),  # one-letter words next to longer ones stay apart
        ("kill!", "kiii!"),  # trailing punctuation is not leetspeak
    ],
)
def test_latin_undoes_spacing_and_leetspeak_but_keeps_words(raw: str, expected: str) -> None:
    """The latin view joins spaced letters and folds leetspeak, keeping word boundaries."""
    assert NormalizedText(raw).latin == expected


def test_latin_treats_one_and_l_as_the_same_letter() -> None:
    """'1' stands for both i and l, so k1ll, ki1l and kill read the same."""
    assert latin("k1ll") == latin("ki1l") == latin("kill")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("〇九〇一二三四五六七八", "09012345678"),  # digit by digit
        ("○九○", "090"),  # circles for zero
        ("二十三", "23"),
        ("十", "10"),
        ("百五", "105"),
        ("千五百", "1500"),
        ("三万", "30000"),
        ("一万二千", "12000"),
        ("二〇二六年", "2026年"),
        ("壱弐参", "123"),  # formal numerals
        ("万引き", "万引き"),  # 万 alone is a word
    ],
)
def test_kanji_numerals_become_digits(raw: str, expected: str) -> None:
    """Kanji numerals are read digit by digit or positionally, as written."""
    assert kanji_to_digits(raw) == expected


def _kanji(number: int) -> str:
    """``number`` (1..99,999,999) written positionally in kanji, as people do."""
    numerals = "〇一二三四五六七八九"

    def below_man(value: int) -> str:
        out = ""
        for unit, name in ((1000, "千"), (100, "百"), (10, "十")):
            count, value = divmod(value, unit)
            if count:
                out += ("" if count == 1 else numerals[count]) + name
        return out + (numerals[value] if value else "")

    man, rest = divmod(number, 10_000)
    return (below_man(man) + "万" if man else "") + below_man(rest)


@given(st.integers(min_value=1, max_value=99_999_999))
def test_positional_kanji_numerals_round_trip(number: int) -> None:
    """Any positional kanji numeral reads back as its value."""
    assert kanji_to_digits(_kanji(number)) == str(number)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O9O-l234-5678", "090-1234-5678"),  # letters for digits beside digits
        ("０９０－１２３４", "090-1234"),  # full width
        ("hello world", "hello world"),  # o and l in words stay letters
        ("〇九〇の一二三四", "090の1234"),
    ],
)
def test_digits_view_reads_numbers_however_written(raw: str, expected: str) -> None:
    """The digits view turns every way of writing a digit into an ASCII digit."""
    assert digits(fold(raw)) == expected


def test_views_are_computed_once() -> None:
    """A view is computed on first use and then reused."""
    normalized = NormalizedText("ＡＢＣ")
    assert normalized.plain is normalized.plain
    assert normalized.compact is normalized.compact


def test_fold_kana_leaves_regex_escapes_alone() -> None:
    """fold_kana only touches katakana, so hand-written patterns keep their escapes."""
    assert fold_kana(r"ライン\s*\S+[ァ-ン]") == r"らいん\s*\S+[ぁ-ん]"
