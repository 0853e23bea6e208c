"""The syntax tree of a segment definition, its canonical rendering, and the checks the
expression parser and the structured form share (so both say the same thing about the
same mistake).

Both forms of a definition compile to these nodes; nodes compare equal regardless of
where they came from (locations are left out of equality), so "the structured form and
the expression mean the same" is plain ``==``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from services.marketing.domain.events import Catalogue, ValueType, suggestion
from services.marketing.domain.facts import MAX_WINDOW_DAYS

Value = str | int | bool | timedelta
"""A literal: a string, a whole number, a boolean, or a duration."""

MAX_DURATION = timedelta(days=36_500)
"""Ages in ``within``/``ago`` beyond a century are certainly typos."""
MAX_LIST_LENGTH = 100
SIGNUP_AGE = "signup_age"
"""The one derived attribute: ``signup_age`` is ``signup_at ago``."""
SEGMENT_ID = re.compile(r"[a-z][a-z0-9_-]{1,63}")


class Op(StrEnum):
    """A comparison operator."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class Which(StrEnum):
    """The first or the latest occurrence of an event type."""

    FIRST = "first"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a node came from, for error messages: a field path, and a column (1-based)
    when the field is an expression.
    """

    field: str
    column: int | None = None

    def describe(self, message: str) -> str:
        """``message`` prefixed with the column when there is one."""
        return message if self.column is None else f"column {self.column}: {message}"


NOWHERE = Location("")


# Terms: what a condition compares.


@dataclass(frozen=True, slots=True)
class Attribute:
    """A user attribute (or, in a property filter, an event property)."""

    name: str
    type: ValueType


@dataclass(frozen=True, slots=True)
class Count:
    """``count(event_type)`` (all time, ``days`` None) or ``count(event_type, Nd)``."""

    event_type: str
    days: int | None = None


@dataclass(frozen=True, slots=True)
class Sum:
    """``sum(event_type.prop)`` or ``sum(event_type.prop, Nd)``."""

    event_type: str
    prop: str
    days: int | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """``first(event_type)`` or ``last(event_type)``: a time, used only through `Age`."""

    which: Which
    event_type: str


@dataclass(frozen=True, slots=True)
class Age:
    """How long ago a time was: ``last(x) ago``, ``signup_at ago`` (``signup_age``)."""

    of: Attribute | Occurrence


Term = Attribute | Count | Sum | Age


# Conditions.


@dataclass(frozen=True, slots=True)
class Compare:
    """``term <op> value``; ``Compare(Age(t), LE, d)`` is ``t within d``."""

    term: Term
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class InList:
    """``term in [values]`` or ``term not in [values]``."""

    term: Term
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InSegment:
    """``in_segment("segment_id")``."""

    segment_id: str
    where: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Constant:
    """``true`` or ``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """Every operand holds (two or more; see `all_of`)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one operand holds (two or more; see `any_of`)."""

    operands: tuple[Node, ...]


Node = Compare | InList | InSegment | Constant | Not | And | Or


def all_of(operands: list[Node]) -> Node:
    """The conjunction, flattened (``a and (b and c)`` is one `And`); one operand is itself."""
    flat: list[Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, And) else (operand,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def any_of(operands: list[Node]) -> Node:
    """The disjunction, flattened like `all_of`."""
    flat: list[Node] = []
    for operand in operands:
        flat.extend(operand.operands if isinstance(operand, Or) else (operand,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def term_type(term: Term) -> ValueType:
    """What a term evaluates to."""
    if isinstance(term, Attribute):
        return term.type
    if isinstance(term, Age):
        return ValueType.DURATION
    return ValueType.INT


def in_segments(node: Node) -> list[InSegment]:
    """The ``in_segment`` references of a definition, in the order they appear."""
    if isinstance(node, InSegment):
        return [node]
    if isinstance(node, Not):
        return in_segments(node.operand)
    if isinstance(node, And | Or):
        return [ref for operand in node.operands for ref in in_segments(operand)]
    return []


# Rendering: one canonical spelling that parses back to an equal tree.

_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


def render(node: Node) -> str:
    """The definition in the segment language, canonically spelled."""
    return _render(node, _OR)


def _render(node: Node, context: int) -> str:
    if isinstance(node, Or | And):
        level = _OR if isinstance(node, Or) else _AND
        joiner = " or " if isinstance(node, Or) else " and "
        text = joiner.join(_render(operand, level + 1) for operand in node.operands)
        return f"({text})" if level < context else text
    if isinstance(node, Not):
        return "not " + _render(node.operand, _NOT)
    if isinstance(node, Constant):
        return "true" if node.value else "false"
    if isinstance(node, InSegment):
        return f"in_segment({render_value(node.segment_id)})"
    if isinstance(node, InList):
        keyword = "not in" if node.negated else "in"
        return f"{render_term(node.term)} {keyword} [{', '.join(render_value(v) for v in node.values)}]"
    if isinstance(node.term, Age) and node.op is Op.LE:
        return f"{_render_time(node.term.of)} within {render_value(node.value)}"
    return f"{render_term(node.term)} {node.op.value} {render_value(node.value)}"


def render_term(term: Term) -> str:
    """A term as written in an expression (``count(item_listed, 30d)``)."""
    if isinstance(term, Attribute):
        return term.name
    if isinstance(term, Count):
        window = "" if term.days is None else f", {term.days}d"
        return f"count({term.event_type}{window})"
    if isinstance(term, Sum):
        window = "" if term.days is None else f", {term.days}d"
        return f"sum({term.event_type}.{term.prop}{window})"
    if isinstance(term.of, Attribute) and term.of.name == "signup_at":
        return SIGNUP_AGE
    return f"{_render_time(term.of)} ago"


def _render_time(of: Attribute | Occurrence) -> str:
    return of.name if isinstance(of, Attribute) else f"{of.which.value}({of.event_type})"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def render_value(value: Value) -> str:
    """A literal as written in an expression."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'
    return render_duration(value)


def render_duration(value: timedelta) -> str:
    """``7d``, ``36h``, ``90m``: the largest unit that divides it (whole minutes)."""
    minutes = int(value.total_seconds()) // 60
    if minutes and minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


# Checks shared by the parser and the structured form. Each returns what is wrong, or None.

TYPE_NAMES = {
    ValueType.STRING: "a string",
    ValueType.INT: "a whole number",
    ValueType.BOOL: "a boolean",
    ValueType.TIME: "a time",
    ValueType.DURATION: "a duration",
}
_EXAMPLES = {
    ValueType.STRING: 'a string such as "kanto"',
    ValueType.INT: "a whole number",
    ValueType.BOOL: "true or false",
    ValueType.DURATION: "a duration such as 7d",
}
_OPERATORS = {
    ValueType.STRING: (Op.EQ, Op.NE),
    ValueType.BOOL: (Op.EQ, Op.NE),
    ValueType.INT: tuple(Op),
    ValueType.DURATION: tuple(Op),
}


def value_type_of(value: Value) -> ValueType:
    """The type of a literal."""
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, int):
        return ValueType.INT
    if isinstance(value, str):
        return ValueType.STRING
    return ValueType.DURATION


def operator_problem(term: Term, op: Op | None, *, in_list: bool = False) -> str | None:
    """Why ``op`` (or ``in`` when ``in_list``) cannot apply to ``term``."""
    kind = term_type(term)
    if in_list:
        if kind in (ValueType.STRING, ValueType.INT):
            return None
        return f"{render_term(term)} is {TYPE_NAMES[kind]}: 'in' takes strings or whole numbers"
    if op is None or op in _OPERATORS.get(kind, ()):
        return None
    allowed = ", ".join(o.value for o in _OPERATORS[kind]) + (" or in" if kind is ValueType.STRING else "")
    return f"{render_term(term)} is {TYPE_NAMES[kind]}: compare it with {allowed}, not {op.value}"


def literal_problem(term: Term, value: Value) -> str | None:
    """Why ``value`` cannot be compared with ``term``: its type, its range."""
    kind = term_type(term)
    actual = value_type_of(value)
    if actual is not kind:
        shown = render_value(value)
        return f"{render_term(term)} is {TYPE_NAMES[kind]}; compare it with {_EXAMPLES[kind]}, not {shown}"
    if isinstance(value, timedelta):
        return duration_problem(value)
    if isinstance(value, str):
        return string_problem(value)
    return None


def duration_problem(value: timedelta) -> str | None:
    """Why a duration cannot be an age: negative, not whole minutes, or beyond a century."""
    if value < timedelta(0):
        return "a duration cannot be negative"
    if value % timedelta(minutes=1):
        return "a duration is a whole number of minutes"
    if value > MAX_DURATION:
        return f"a duration is at most {MAX_DURATION.days}d"
    return None


def string_problem(value: str) -> str | None:
    """Why a string cannot be a literal: control characters other than newline and tab."""
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        return "a string may not contain control characters"
    return None


def window_problem(window: timedelta) -> str | None:
    """Why a duration cannot be a count/sum window: whole days, 1d to `MAX_WINDOW_DAYS`."""
    if window % timedelta(days=1) or window < timedelta(days=1):
        return f"a window is a whole number of days (24h is 1d), not {render_duration(window)}"
    if window.days > MAX_WINDOW_DAYS:
        return (
            f"a window is at most {MAX_WINDOW_DAYS}d (per-day counts are kept that long); "
            "leave the window out for all time"
        )
    return None


def event_type_problem(catalogue: Catalogue, name: str) -> str | None:
    """Why ``name`` is not an event type of the catalogue."""
    if catalogue.event_type(name) is not None:
        return None
    return f"unknown event type {name!r}" + suggestion(name, catalogue.event_types)


def summed_problem(catalogue: Catalogue, event_type: str, prop: str) -> str | None:
    """Why ``event_type.prop`` cannot be summed (the event type is known)."""
    spec = catalogue.event_type(event_type)
    if spec is None or prop in spec.summed:
        return None
    summed = ", ".join(sorted(spec.summed)) or "none"
    what = "is not summed" if prop in spec.properties else "is not a property"
    hint = suggestion(prop, spec.summed)
    return f"{event_type}.{prop} {what}{hint} (summed properties of {event_type}: {summed})"


def segment_id_problem(segment_id: str) -> str | None:
    """Why ``segment_id`` cannot name a segment."""
    if SEGMENT_ID.fullmatch(segment_id):
        return None
    return f"{segment_id!r} is not a segment id (2-64 lowercase letters, digits, '_' and '-', starting with a letter)"
