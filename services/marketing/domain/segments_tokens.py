"""The tokens of the segment language: words, strings, whole numbers, durations
(``30d``, ``24h``, ``90m``, ``2w``), comparison operators and punctuation, each with its
1-based column so errors can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum, auto

from services.marketing.domain.events import SEGMENT_KEYWORDS
from services.marketing.domain.segments_ast import Op

KEYWORDS = SEGMENT_KEYWORDS
_INT64 = 2**63

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_NUMBER = re.compile(r"-?[0-9]+(?:_[0-9]+)*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = {"==": Op.EQ, "!=": Op.NE, "<=": Op.LE, ">=": Op.GE, "<": Op.LT, ">": Op.GT}
_PUNCTUATION = frozenset("()[],.")
_HINTS = {
    "=": "'=' is not an operator; use '=='",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or '!=')",
    "'": "strings are in double quotes",
}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class Kind(Enum):
    """What a token is."""

    WORD = auto()
    STRING = auto()
    INT = auto()
    DURATION = auto()
    OPERATOR = auto()
    PUNCT = auto()
    END = auto()


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its source text, its value, and its 1-based column."""

    kind: Kind
    text: str
    column: int
    value: str | int | timedelta | Op | None = None

    def shown(self) -> str:
        """The token as an error message names it."""
        return "end of expression" if self.kind is Kind.END else repr(self.text)


class SyntaxProblem(Exception):
    """The text cannot be parsed past a column."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an END token; `SyntaxProblem` at a bad character."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char == '"':
            value, i = _string(text, i)
            tokens.append(Token(Kind.STRING, text[column - 1 : i], column, value))
        elif char.isdigit() or (char == "-" and text[i + 1 : i + 2].isdigit()):
            token, i = _number(text, i)
            tokens.append(token)
        elif (word := _WORD.match(text, i)) is not None:
            tokens.append(Token(Kind.WORD, word.group(), column, word.group()))
            i = word.end()
        elif text[i : i + 2] in _OPERATORS:
            tokens.append(Token(Kind.OPERATOR, text[i : i + 2], column, _OPERATORS[text[i : i + 2]]))
            i += 2
        elif char in _OPERATORS:
            tokens.append(Token(Kind.OPERATOR, char, column, _OPERATORS[char]))
            i += 1
        elif char in _PUNCTUATION:
            tokens.append(Token(Kind.PUNCT, char, column))
            i += 1
        else:
            hint = _HINTS.get(char)
            raise SyntaxProblem(column, f"unexpected {char!r}" + (f"; {hint}" if hint else ""))
    tokens.append(Token(Kind.END, "", len(text) + 1))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(chars), i + 1
        if char == "\\":
            escaped = _ESCAPES.get(text[i + 1 : i + 2])
            if escaped is None:
                raise SyntaxProblem(i + 1, 'unknown escape in a string (use \\", \\\\, \\n or \\t)')
            chars.append(escaped)
            i += 2
            continue
        if ord(char) < 32 and char not in "\n\t":
            raise SyntaxProblem(i + 1, "a string may not contain control characters")
        chars.append(char)
        i += 1
    raise SyntaxProblem(start + 1, "unterminated string: a closing '\"' is missing")


def _number(text: str, start: int) -> tuple[Token, int]:
    found = _NUMBER.match(text, start)
    assert found is not None  # the caller saw a digit
    end = found.end()
    number = int(found.group().replace("_", ""))
    unit = _WORD.match(text, end)
    if unit is None:
        if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():
            raise SyntaxProblem(start + 1, "numbers are whole (amounts are in minor units)")
        if not -_INT64 <= number < _INT64:
            raise SyntaxProblem(start + 1, "the number does not fit in 64 bits")
        return Token(Kind.INT, found.group(), start + 1, number), end
    suffix = unit.group()
    if suffix not in _UNITS:
        raise SyntaxProblem(end + 1, f"unknown duration unit {suffix!r}; use m, h, d or w (as in 30d)")
    if number < 0:
        raise SyntaxProblem(start + 1, "a duration cannot be negative")
    try:
        duration = number * _UNITS[suffix]
    except OverflowError:
        raise SyntaxProblem(start + 1, "the duration is too long") from None
    source = text[start : unit.end()]
    return Token(Kind.DURATION, source, start + 1, duration), unit.end()
