"""Segments: definitions in the segment language or in structured form, validated with
precise errors, and evaluated against a user's facts.

The pieces::

    parse_expression(text, catalogue)          text  → Node    (segments_parser)
    compile_conditions(group, catalogue)       group → Node    (segments_conditions)
    check_references(node, resolve, ...)       unknown segments, cycles, depth
    render(node)                               Node  → canonical text
    evaluate(node, facts, now, resolve)        is the user a member?
    parse_property_filter / matches_properties a campaign trigger's filter on one event

Evaluation is a pure function of the definition, the user's facts, the time and the other
segments' definitions. A comparison with something the user does not have (an attribute
never set, a first occurrence that never happened) is false, so ``not (region ==
"kanto")`` holds for a user without a region while ``region != "kanto"`` does not.
The language itself is described in docs/marketing.md.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.marketing.domain import facts as user_facts
from services.marketing.domain.events import Catalogue, EventTypeSpec, PropertyValue, ValueType
from services.marketing.domain.facts import AttributeValue, UserFacts
from services.marketing.domain.segments_ast import (
    Age,
    And,
    Attribute,
    Compare,
    Constant,
    Count,
    InList,
    InSegment,
    Node,
    Not,
    Occurrence,
    Op,
    Or,
    Sum,
    Term,
    Value,
    Which,
    in_segments,
    render,
    render_value,
)
from services.marketing.domain.segments_conditions import ConditionGroup, compile_conditions
from services.marketing.domain.segments_parser import parse

__all__ = [
    "MAX_REFERENCE_DEPTH",
    "Dependencies",
    "Resolver",
    "check_references",
    "compile_conditions",
    "compile_definition",
    "dependencies",
    "evaluate",
    "matches_properties",
    "parse_expression",
    "parse_property_filter",
    "render",
]

MAX_REFERENCE_DEPTH = 8
"""How deep ``in_segment`` references may nest (a → b → ... ), the segment itself included."""

Resolver = Callable[[str], Node | None]
"""The compiled definition of a saved segment by id, or None when there is none."""


def parse_expression(text: str, catalogue: Catalogue, *, field: str = "segment.expression") -> Node:
    """Parse a definition in the segment language; `InvalidArgument` with every problem,
    each a violation on ``field`` whose description starts with the column.
    """
    return parse(text, catalogue.attributes, catalogue, field)


def compile_definition(
    definition: str | ConditionGroup,
    catalogue: Catalogue,
    resolve: Resolver,
    *,
    segment_id: str | None = None,
    field: str = "segment",
) -> Node:
    """Compile either form (an expression, or structured conditions) and check its
    references: what CreateSegment, UpdateSegment and PreviewSegment do. ``segment_id``
    is the segment being defined, if it has an id, so references back to it are cycles.
    """
    if isinstance(definition, str):
        node = parse_expression(definition, catalogue, field=f"{field}.expression")
    else:
        node = compile_conditions(definition, catalogue, field=f"{field}.conditions")
    check_references(node, resolve, segment_id=segment_id)
    return node


def check_references(node: Node, resolve: Resolver, *, segment_id: str | None = None) -> None:
    """Refuse references to unknown segments, cycles back to ``segment_id``, and chains
    deeper than `MAX_REFERENCE_DEPTH`; each problem is reported where its ``in_segment``
    is (the column of an expression, the path of a structured condition).
    """
    violations: list[FieldViolation] = []
    reported: set[str] = set()
    for ref in in_segments(node):
        if ref.segment_id in reported:
            continue
        reported.add(ref.segment_id)
        problem = _reference_problem(ref.segment_id, resolve, segment_id)
        if problem is not None:
            violations.append(FieldViolation(ref.where.field, ref.where.describe(problem)))
    if violations:
        raise InvalidArgument("the definition refers to segments it may not", violations)


class _ReferenceProblem(Exception):
    """What is wrong below one reference."""


def _reference_problem(target: str, resolve: Resolver, origin: str | None) -> str | None:
    """Why the reference to ``target`` from the segment ``origin`` (None: unsaved) is refused."""
    if target == origin:
        return f"in_segment({render_value(target)}) refers to the segment being defined"
    if resolve(target) is None:
        return f"unknown segment {target!r}"
    head = [origin or "(this segment)"]
    longest: dict[str, list[str]] = {}

    def chain(current: str, path: list[str]) -> list[str]:
        """The longest chain of references from ``current`` down (``path`` leads to it)."""
        if current in longest:
            return longest[current]
        if len(path) > MAX_REFERENCE_DEPTH:
            raise _ReferenceProblem(f"segment references nest deeper than {MAX_REFERENCE_DEPTH}: {' → '.join(path)}")
        definition = resolve(current)
        if definition is None:
            raise _ReferenceProblem(f"segment {current!r} (through {' → '.join(path[:-1])}) does not exist")
        best = [current]
        for ref in in_segments(definition):
            following = [*path, ref.segment_id]
            if ref.segment_id == origin or ref.segment_id in path:
                raise _ReferenceProblem(f"in_segment({render_value(target)}) makes a cycle: {' → '.join(following)}")
            below = chain(ref.segment_id, following)
            if len(below) + 1 > len(best):
                best = [current, *below]
        longest[current] = best
        return best

    try:
        deepest = [*head, *chain(target, [*head, target])]
    except _ReferenceProblem as problem:
        return str(problem)
    if len(deepest) > MAX_REFERENCE_DEPTH:
        return f"segment references nest deeper than {MAX_REFERENCE_DEPTH}: {' → '.join(deepest)}"
    return None


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What a definition reads directly (not through the segments it refers to)."""

    event_types: frozenset[str]
    """Events of these types can change membership: re-evaluate when one arrives."""
    attributes: frozenset[str]
    segments: frozenset[str]
    time_sensitive: bool
    """Windows or ages: membership can change with time alone, so sweep periodically."""


def dependencies(node: Node) -> Dependencies:
    """What ``node`` reads; the union over referenced segments is the caller's to take."""
    event_types: set[str] = set()
    attributes: set[str] = set()
    time_sensitive = False

    def term(t: Term) -> None:
        nonlocal time_sensitive
        if isinstance(t, Attribute):
            attributes.add(t.name)
        elif isinstance(t, Count | Sum):
            event_types.add(t.event_type)
            time_sensitive = time_sensitive or t.days is not None
        else:
            time_sensitive = True
            if isinstance(t.of, Attribute):
                attributes.add(t.of.name)
            else:
                event_types.add(t.of.event_type)

    def visit(n: Node) -> None:
        if isinstance(n, Compare | InList):
            term(n.term)
        elif isinstance(n, Not):
            visit(n.operand)
        elif isinstance(n, And | Or):
            for operand in n.operands:
                visit(operand)

    visit(node)
    segments = frozenset(ref.segment_id for ref in in_segments(node))
    return Dependencies(frozenset(event_types), frozenset(attributes), segments, time_sensitive)


def evaluate(node: Node, facts: UserFacts, now: datetime, resolve: Resolver | None = None) -> bool:
    """Whether the user whose ``facts`` these are is in the segment defined by ``node`` at
    ``now``. ``resolve`` gives the definitions of referenced segments (each is evaluated
    at most once per call); a reference it cannot resolve is `FailedPrecondition`.
    """
    return _Evaluation(facts.attributes.get, facts, now, resolve).holds(node)


def parse_property_filter(
    text: str, spec: EventTypeSpec, *, field: str = "campaign.trigger.event.property_filter"
) -> Node:
    """Parse a campaign trigger's filter over the properties of ``spec``'s events: the
    segment language without functions, whose bare names are the event's properties.
    """
    return parse(text, spec.properties, None, field)


def matches_properties(node: Node, properties: Mapping[str, PropertyValue]) -> bool:
    """Whether an event with these properties passes a property filter."""
    return _Evaluation(properties.get, None, None, None).holds(node)


class _Evaluation:
    """One evaluation: the user's data, the time, and the memo of referenced segments."""

    def __init__(
        self,
        lookup: Callable[[str], AttributeValue | None],
        facts: UserFacts | None,
        now: datetime | None,
        resolve: Resolver | None,
    ) -> None:
        self.lookup = lookup
        self.facts = facts
        self.now = now
        self.resolve = resolve
        self.memo: dict[str, bool] = {}
        self.active: list[str] = []

    def holds(self, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.holds(operand) for operand in node.operands)
        if isinstance(node, Or):
            return any(self.holds(operand) for operand in node.operands)
        if isinstance(node, Not):
            return not self.holds(node.operand)
        if isinstance(node, Constant):
            return node.value
        if isinstance(node, InSegment):
            return self.member(node.segment_id)
        value = self.value(node.term)
        if value is None:
            return False
        if isinstance(node, InList):
            return (value in node.values) != node.negated
        return _compare(value, node.op, node.value)

    def member(self, segment_id: str) -> bool:
        if segment_id in self.memo:
            return self.memo[segment_id]
        definition = None if self.resolve is None else self.resolve(segment_id)
        if definition is None:
            raise FailedPrecondition(
                f"segment {segment_id!r} is referenced but does not exist", reason="SEGMENT_REFERENCE_MISSING"
            )
        if segment_id in self.active or len(self.active) >= MAX_REFERENCE_DEPTH:
            raise FailedPrecondition(
                f"segment references cycle or nest too deep: {' → '.join([*self.active, segment_id])}",
                reason="SEGMENT_REFERENCE_CYCLE",
            )
        self.active.append(segment_id)
        try:
            result = self.memo[segment_id] = self.holds(definition)
        finally:
            self.active.pop()
        return result

    def value(self, term: Term) -> Value | None:
        if isinstance(term, Attribute):
            return _typed(self.lookup(term.name), term.type)
        facts, now = self.facts, self.now
        if facts is None or now is None:
            raise ValueError("user aggregates are not available in a property filter")
        if isinstance(term, Count):
            return user_facts.count(facts, term.event_type, now, term.days)
        if isinstance(term, Sum):
            return user_facts.total(facts, term.event_type, term.prop, now, term.days)
        moment = self.moment(term, facts)
        return None if moment is None else max(now - moment, timedelta(0))

    def moment(self, age: Age, facts: UserFacts) -> datetime | None:
        of = age.of
        if isinstance(of, Occurrence):
            read = user_facts.first_at if of.which is Which.FIRST else user_facts.last_at
            return read(facts, of.event_type)
        value = self.lookup(of.name)
        return value if isinstance(value, datetime) else None


def _typed(value: AttributeValue | None, kind: ValueType) -> Value | None:
    """The value if it has the declared type (a stored value of another type is missing)."""
    if value is None or isinstance(value, datetime):
        return None
    if isinstance(value, bool):
        return value if kind is ValueType.BOOL else None
    if isinstance(value, int):
        return value if kind is ValueType.INT else None
    return value if kind is ValueType.STRING else None


_ORDER: dict[Op, Callable[[int, int], bool]] = {
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


def _compare(left: Value, op: Op, right: Value) -> bool:
    if op is Op.EQ:
        return left == right
    if op is Op.NE:
        return left != right
    a, b = _ordinal(left), _ordinal(right)
    if a is None or b is None or isinstance(left, timedelta) != isinstance(right, timedelta):
        return False  # validation allows ordering only between numbers, or between durations
    return _ORDER[op](a, b)


def _ordinal(value: Value) -> int | None:
    """Numbers as themselves, durations in microseconds (exact), anything else None."""
    if isinstance(value, bool | str):
        return None
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    return value
