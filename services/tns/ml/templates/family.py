"""A template family: one way of phrasing one kind of content, the unit the dataset is
split by. Rows of a family share phrasings; the held-out split never shares a family
with training.

Template syntax: ``{slot}`` is filled from a pool in `fillers` (``ja_slot`` / ``en_slot``
first, then ``slot``); ``{a|b|c}`` picks one alternative (may be empty, may nest);
``«word»`` marks a word sellers disguise to get past filters, which the generator
sometimes spaces out, dots or widens. A listing template is ``title || body``, optionally
``|| category``; ``¶`` is a line break.

A family is a *voice* (terse listing, polite listing, buyer comment, seller message...)
and covers every sub-concept of its policy in that voice, so holding a family out
withholds a way of phrasing things, not a whole concept.
"""

from __future__ import annotations

from dataclasses import dataclass

LISTING = "listing"
COMMENT = "comment"
MESSAGE = "message"
CHAT = (COMMENT, MESSAGE)


@dataclass(frozen=True, slots=True)
class Family:
    """One phrasing family: its templates and how many rows to draw from it."""

    group: str
    """``<lang>.<policy or clean>.<name>``; the first part is the language."""
    kinds: tuple[str, ...]
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    """Comment and message bodies; for listings ``title || body``."""
    categories: tuple[str, ...] = ()
    prices: tuple[int, int] = (300, 30_000)
    rows: int = 55

    @property
    def lang(self) -> str:
        """``ja`` or ``en``."""
        return self.group.split(".", 1)[0]


def lines(block: str) -> tuple[str, ...]:
    """The non-blank lines of ``block``, stripped: how templates and pools are written."""
    return tuple(line.strip() for line in block.splitlines() if line.strip())


def pool(block: str) -> tuple[str, ...]:
    """The values of a word pool written as ``a / b / c`` (line breaks allowed)."""
    return tuple(value.strip() for value in block.split("/") if value.strip())


def listing(
    group: str,
    labels: tuple[str, ...],
    templates: str,
    categories: str,
    prices: tuple[int, int] = (300, 30_000),
    rows: int = 55,
) -> Family:
    """A listing family: one ``title || body`` (or ``title || body || category``) template
    a line, the categories to draw from otherwise, a price range.
    """
    parsed = lines(templates)
    bad = [t for t in parsed if t.count("||") not in (1, 2)]
    if bad:
        raise ValueError(f"{group}: listing templates need 'title || body [|| category]': {bad}")
    return Family(group, (LISTING,), labels, parsed, lines(categories), prices, rows)


def chat(group: str, labels: tuple[str, ...], templates: str, kinds: tuple[str, ...] = CHAT, rows: int = 55) -> Family:
    """A comment and/or transaction-message family: one body template a line."""
    return Family(group, kinds, labels, lines(templates), rows=rows)
