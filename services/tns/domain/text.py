"""Text normalization for moderation: one text, several views, each defeating one kind of
evasion, each computed at most once.

Every view starts from `fold`: invisible characters dropped, Unicode NFKC (full-width
letters and digits become ASCII, half-width katakana becomes full-width), casefold,
katakana → hiragana (so either script matches), and Cyrillic or Greek look-alikes →
Latin. The views built on it:

- ``plain``: `fold` alone; what the e-mail and URL detectors and rule-file patterns read.
- ``compact``: ``plain`` without spaces, punctuation, symbols and the long-vowel mark
  ``ー``, small kana written large, so ``"か.い.せ.い"`` and ``"ｽｰﾊﾟｰｺﾋﾟｰ"`` read as
  ``"かいせい"`` and ``"すぱこぴ"``. Japanese keywords match on it.
- ``latin``: ``plain`` with spaced-out single letters joined (``"c o c a i n e"``),
  leetspeak folded inside words (``"c0ca1ne"``), punctuation inside words dropped
  (``"co.caine"``) and ``l`` merged into ``i`` (``"1"`` stands for both). Word
  boundaries survive, so Latin keywords match whole words there.
- ``digits``: ``plain`` with kanji numerals as digits (``"〇九〇"`` → ``"090"``,
  ``"二十三"`` → ``"23"``) and ``o``/``l`` next to digits as ``0``/``1``; what the phone and
  bank-account detectors read. Digits are never folded to letters here.

Speed matters (every listing and message passes here): ``str.translate`` and
``unicodedata.normalize`` cost tens of microseconds on a Japanese text, so each step
first checks, with a regular expression or a quick check running in C, whether it has
anything to do, and then works on the affected runs only.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that render as nothing and are inserted to split a word: zero-width spaces
# and joiners, soft hyphen, word joiner, BOM, variation selectors.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u180e\u200b-\u200f\u2060-\u2064\u206a-\u206f\ufe00-\ufe0f\ufeff\U000e0100-\U000e01ef]+"
)
# Characters NFKC never changes, whatever surrounds them, and that never combine with the
# character before them (checked by the tests against the Unicode database): ASCII, kana,
# CJK ideographs, common Japanese punctuation and symbols.
_NFKC_SAFE = (
    "\x00-\x7f\u00d7\u203b\u2190-\u2193\u25a0-\u25ff\u2605\u2606\u266a\u3001\u3002\u3005-\u3011\u3014-\u301f"
    "\u3041-\u3096\u30a1-\u30fc\u4e00-\u9fff"
)
_NFKC_UNSAFE_RUN = re.compile(f"[^{_NFKC_SAFE}]+")
_KATAKANA_RUN = re.compile("[\u30a1-\u30f6\u30fd\u30fe][\u30a1-\u30f6\u30fc-\u30fe]*")
_KATAKANA_TO_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)} | {0x30FD: 0x309D, 0x30FE: 0x309E}
# Cyrillic and Greek letters that look Latin: "cocaine" typed with a Cyrillic "o".
_LOOK_ALIKES = str.maketrans("аеіјкмнорсухѕԁɡαβεικνορτυχı", "aeijkmhopcyxsdgabeikvoptuxi")
# A dakuten NFKC could not compose onto its base is noise, not a letter.
_STRAY_MARK = re.compile("[\u3099\u309a]+")
# Either of the above: one scan tells whether the (slow) fixes are needed at all.
_RARE = re.compile("[\u0261\u0131\u0370-\u052f\u3099\u309a]")


def _nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, normalizing only the runs that need it."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    needs_context = False

    def normalize(run: re.Match[str]) -> str:
        nonlocal needs_context
        normalized = unicodedata.normalize("NFKC", run.group())
        # A run starting with a combining mark (or a character becoming one: half-width ﾞ
        # is a dakuten) composes with the safe character before it: ウ + ﾞ is ヴ.
        if run.start() and normalized and unicodedata.combining(normalized[0]):
            needs_context = True
        return normalized

    result = _NFKC_UNSAFE_RUN.sub(normalize, text)
    return unicodedata.normalize("NFKC", text) if needs_context else result


# Katakana words repeat across texts (brand names, product words), and str.translate is
# slow outside ASCII: folded runs are kept, up to a bound (a plain dict: lru_cache costs a
# second Python call per run).
_HIRAGANA: dict[str, str] = {}
_HIRAGANA_MAX = 20_000


def _hiragana_run(match: re.Match[str]) -> str:
    katakana = match.group()
    hiragana = _HIRAGANA.get(katakana)
    if hiragana is None:
        hiragana = katakana.translate(_KATAKANA_TO_HIRAGANA)
        if len(_HIRAGANA) < _HIRAGANA_MAX:
            _HIRAGANA[katakana] = hiragana
    return hiragana


def fold_kana(pattern: str) -> str:
    r"""Katakana → hiragana: how `fold` writes kana, for regular expressions written by hand.

    Only katakana changes: escapes like ``\S`` stay intact.
    """
    return _KATAKANA_RUN.sub(_hiragana_run, pattern) if _KATAKANA_RUN.search(pattern) else pattern


def _fold_once(text: str) -> str:
    folded = _nfkc(text).casefold()
    if folded.isascii():  # a constant-time check: nothing below applies to ASCII
        return folded
    if _RARE.search(folded):
        folded = _STRAY_MARK.sub("", folded.translate(_LOOK_ALIKES))
    return _KATAKANA_RUN.sub(_hiragana_run, folded)


def fold(text: str) -> str:
    """NFKC, casefold, katakana → hiragana, look-alike letters → Latin, invisibles dropped.

    Idempotent: ``fold(fold(t)) == fold(t)``.
    """
    folded = _fold_once(text if text.isascii() else _INVISIBLE.sub("", text))
    # Casefolding or dropping a stray mark can leave a string NFKC would change again:
    # loop until stable so the result is a fixed point (almost never runs twice). Case
    # folding is idempotent and nothing after it makes upper case, so NFKC is all to check.
    while not unicodedata.is_normalized("NFKC", folded):
        folded = _fold_once(folded)
    return folded


# Letters and digits, except the long-vowel mark (a letter to Unicode).
_COMPACT_RUN = re.compile(r"[^\W_ー]+")
# Small kana are how ッ/ャ are written, and also an easy way to vary a word.
_SMALL_KANA = tuple(zip("ぁぃぅぇぉっゃゅょゎゕゖ", "あいうえおつやゆよわかけ", strict=True))


def compact(plain: str) -> str:
    """``plain`` without whitespace, punctuation, symbols and ``ー``; small kana made large."""
    text = "".join(_COMPACT_RUN.findall(plain))  # faster than deleting what is between
    if text.isascii():
        return text
    for small, large in _SMALL_KANA:
        if small in text:  # str.replace is cheap, str.translate is not
            text = text.replace(small, large)
    return text


# Every pattern here starts with a character class, so the engine skips ahead in C to the
# characters that can start a match (a lookbehind first would be tried at every position).
# Separators between single letters, as in "c o c a i n e" or "k.i.l.l": up to three, after
# a one-character word and before another.
_SEPARATOR = r"[\s.,\-_*/|~・、。:;!?'\"+=]"
_SPACED_LETTERS = re.compile(
    _SEPARATOR + r"(?<=[a-z0-9@$].)(?<![a-z0-9@$]..)" + _SEPARATOR + r"{0,2}(?=[a-z0-9@$](?![a-z0-9@$]))"
)
# Leetspeak: inside a word (letters on both sides), at its start, or one character at its
# end. A trailing run of digits is left alone: "glock19" and "iphone15" are model numbers.
_LEET_CHARS = re.compile(
    r"[013457@$!|](?:"
    r"(?<=[a-z].)[013457@$!|]*(?=[a-z])"
    r"|(?<=[013457@$])(?<![a-z0-9@$].)[013457@$]*(?=[a-z])"
    r"|(?<=[013457$])(?<=[a-z].)(?![a-z0-9@$]))"
)
_LEET = str.maketrans("013457@$!|", "oieastasii")
# Punctuation inside a word: "co.caine", "co-caine", "don't".
_IN_WORD_PUNCTUATION = re.compile(r"[.\-_*'\u2019·・](?<=[a-z].)[.\-_*'\u2019·・]*(?=[a-z])")


def _unleet(match: re.Match[str]) -> str:
    return match.group().translate(_LEET)


def latin(plain: str) -> str:
    """``plain`` with spaced letters joined, leetspeak folded, in-word punctuation dropped
    and ``l`` written as ``i``; Latin keywords are matched on it as whole words.
    """
    text = _SPACED_LETTERS.sub("", plain)
    text = _LEET_CHARS.sub(_unleet, text)
    text = _IN_WORD_PUNCTUATION.sub("", text)
    # "1" is leet for both i and l; merging the letters lets "k1ll" and "ki1l" match "kill".
    return text.replace("l", "i")


# Zero is written U+3007 (ideographic zero), or with a circle (U+25CB, U+25EF).
_KANJI_DIGITS = {
    "\u3007": 0, "\u25cb": 0, "\u25ef": 0, "零": 0,
    "一": 1, "壱": 1, "二": 2, "弐": 2, "三": 3, "参": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_KANJI_NUMERAL = re.compile("[" + "".join(_KANJI_DIGITS) + "十百千万]+")
# o and l written for 0 and 1 next to digits ("O9O-l234-5678"), when not part of a word.
_DIGIT_LOOKALIKE = re.compile(r"[ol](?:(?<![a-z].)(?=\d)|(?<=\d.)(?![a-z]))")


def _positional_value(numeral: str) -> int | None:
    """Value of a positional numeral ("二十三", "千五百", "三万"), None when ill-formed."""
    total = 0
    below_man = 0  # the part under 万 (10,000) being built
    digit: int | None = None
    for char in numeral:
        if char in _KANJI_DIGITS:
            if digit is not None:
                return None  # two digits in a row: written digit by digit, not positional
            digit = _KANJI_DIGITS[char]
        elif char in _KANJI_UNITS:
            below_man += (1 if digit is None else digit) * _KANJI_UNITS[char]
            digit = None
        else:  # 万
            total += (below_man + (digit or 0) or 1) * 10_000
            below_man, digit = 0, None
    return total + below_man + (digit or 0)


def _kanji_numeral(match: re.Match[str]) -> str:
    numeral = match.group()
    if not numeral.strip("万"):
        return numeral  # 万 alone is a word (万引き), not a number
    if any(char in _KANJI_UNITS or char == "万" for char in numeral):
        value = _positional_value(numeral)
        if value is not None:
            return str(value)
    return "".join(str(_KANJI_DIGITS[char]) for char in numeral if char in _KANJI_DIGITS)


def kanji_to_digits(text: str) -> str:
    """Kanji numerals as ASCII digits: digit by digit ("〇九〇" → "090") or positional
    ("二十三" → "23", "三万" → "30000").
    """
    return _KANJI_NUMERAL.sub(_kanji_numeral, text)


def digits(plain: str) -> str:
    """``plain`` with kanji numerals as digits and ``o``/``l`` beside digits as ``0``/``1``."""
    text = plain if plain.isascii() else kanji_to_digits(plain)
    return _DIGIT_LOOKALIKE.sub(lambda m: "0" if m.group() == "o" else "1", text)


class NormalizedText:
    """The views of one text; each is computed on first use, then kept."""

    # Plain lazy attributes, not functools.cached_property: on Python 3.11 that takes a
    # lock on every first access, a few microseconds per view on a hot path.
    __slots__ = ("_compact", "_digits", "_latin", "_plain", "original")

    def __init__(self, text: str) -> None:
        """Wrap ``text``; nothing is computed yet."""
        self.original = text
        self._plain: str | None = None
        self._compact: str | None = None
        self._latin: str | None = None
        self._digits: str | None = None

    @property
    def plain(self) -> str:
        """`fold` of the original text."""
        if self._plain is None:
            self._plain = fold(self.original)
        return self._plain

    @property
    def compact(self) -> str:
        """``plain`` without separators (see `compact`)."""
        if self._compact is None:
            self._compact = compact(self.plain)
        return self._compact

    @property
    def latin(self) -> str:
        """``plain`` prepared for whole-word Latin matching (see `latin`)."""
        if self._latin is None:
            self._latin = latin(self.plain)
        return self._latin

    @property
    def digits(self) -> str:
        """``plain`` with numerals as ASCII digits (see `digits`)."""
        if self._digits is None:
            self._digits = digits(self.plain)
        return self._digits
