"""Surface noise for generated rows: how real marketplace text differs from a clean
template (full-width letters, half-width katakana, typos, emoji, casing, line breaks)
and how sellers disguise a flagged word («...» spans in templates).
"""

from __future__ import annotations

import random
import re
import unicodedata

_MARKED = re.compile(r"«([^«»]*)»")
_FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)} | {0x20: 0x3000}
# Full-width katakana -> half-width, built from the half-width block itself; voiced
# marks become separate half-width marks, the way old phones and evaders write them.
_HALFWIDTH_KANA = {unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFF66, 0xFF9E) if chr(c) != "ｰ"} | {
    "\u3099": "\uff9e",
    "\u309a": "\uff9f",
    "ー": "ｰ",
}
# Only sentence ends a line break can follow: a bare "." may sit inside an e-mail or URL.
_SENTENCE_END = re.compile(r"(?<=[。！？])(?=\S)|(?<=[.!?]) +")  # noqa: RUF001 - Japanese sentence ends


def to_fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation in their full-width forms."""
    return text.translate(_FULLWIDTH)


def to_halfwidth_kana(text: str) -> str:
    """Katakana in half-width forms (ｶﾞ for ガ)."""
    out: list[str] = []
    for char in text:
        if "\u30a1" <= char <= "\u30fc":
            out.extend(_HALFWIDTH_KANA.get(part, part) for part in unicodedata.normalize("NFD", char))
        else:
            out.append(char)
    return "".join(out)


def disguise(word: str, rng: random.Random) -> str:
    """``word`` written to slip past a keyword filter."""
    style = rng.randrange(5)
    if style == 0:
        return " ".join(word)
    if style == 1:
        return ".".join(word)
    if style == 2:
        return to_fullwidth(word)
    if style == 3:
        return "\u200b".join(word)
    return "・".join(word)


def resolve_marks(text: str, rng: random.Random, rate: float) -> str:
    """Drop the «» marks, disguising each marked word with probability ``rate``."""
    return _MARKED.sub(lambda m: disguise(m.group(1), rng) if rng.random() < rate else m.group(1), text)


def typo(text: str, rng: random.Random) -> str:
    """One dropped, doubled or swapped character."""
    if len(text) < 12:
        return text
    i = rng.randrange(len(text) - 1)
    op = rng.randrange(3)
    if op == 0:
        return text[:i] + text[i + 1 :]
    if op == 1:
        return text[:i] + text[i] + text[i:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def roughen(text: str, lang: str, rng: random.Random, emoji: tuple[str, ...]) -> str:
    """Row-level noise, each kind with its own small probability."""
    if rng.random() < 0.06:
        text = to_fullwidth(text)
    if lang == "ja" and rng.random() < 0.05:
        text = to_halfwidth_kana(text)
    if rng.random() < 0.08:
        text = typo(text, rng)
    if lang == "en":
        roll = rng.random()
        if roll < 0.12:
            text = text.lower()
        elif roll < 0.15:
            text = text.upper()
    if rng.random() < 0.12:
        text = _SENTENCE_END.sub("\n", text)
    if rng.random() < 0.2:
        text = text + rng.choice(["", " "]) + "".join(rng.choice(emoji) for _ in range(rng.randint(1, 2)))
    return text
