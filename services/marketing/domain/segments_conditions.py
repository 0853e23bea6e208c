"""The structured form of a segment definition (the contract's ``ConditionGroup``), and
its compilation to the same syntax tree the expression parser builds.

These dataclasses mirror the protobuf messages one to one (a ``oneof`` is an optional
field per member), so the api layer converts without decisions, and every problem is
reported on the path of the offending field (``segment.conditions.conditions[2].count.window``)
with the same words the parser uses for the same mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from libs.errors import FieldViolation, InvalidArgument
from services.marketing.domain.events import Catalogue, ValueType, suggestion
from services.marketing.domain.segments_ast import (
    MAX_LIST_LENGTH,
    SIGNUP_AGE,
    Age,
    Attribute,
    Compare,
    Constant,
    Count,
    InList,
    InSegment,
    Location,
    Node,
    Not,
    Occurrence,
    Op,
    Sum,
    Term,
    Value,
    Which,
    all_of,
    any_of,
    duration_problem,
    event_type_problem,
    literal_problem,
    operator_problem,
    segment_id_problem,
    summed_problem,
    window_problem,
)

MAX_CONDITIONS = 50
"""Conditions in one group."""
MAX_GROUP_DEPTH = 16


class GroupOperator(StrEnum):
    """How a group combines its conditions."""

    ALL = "all"
    ANY = "any"


class Operator(StrEnum):
    """A structured comparison: the six of the language, plus in and not in."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    NOT_IN = "not in"


@dataclass(frozen=True, slots=True)
class AttributeCondition:
    """``attribute <operator> values`` (one value, or several for IN / NOT_IN)."""

    attribute: str
    operator: Operator | None
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class CountCondition:
    """``count(event_type, window) <operator> values``; no window is all time."""

    event_type: str
    window: timedelta | None
    operator: Operator | None
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SumCondition:
    """``sum(event_type.property, window) <operator> values``."""

    event_type: str
    property: str
    window: timedelta | None
    operator: Operator | None
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AgeCondition:
    """How long ago a time attribute, or the first or last event of a type, was.

    Exactly one of ``attribute``, ``first_event_type``, ``last_event_type`` is set.
    """

    operator: Operator | None
    age: timedelta | None
    attribute: str = ""
    first_event_type: str = ""
    last_event_type: str = ""


@dataclass(frozen=True, slots=True)
class SegmentCondition:
    """``in_segment(segment_id)``."""

    segment_id: str


@dataclass(frozen=True, slots=True)
class ConditionGroup:
    """Conditions combined with all (and) or any (or)."""

    operator: GroupOperator | None
    conditions: tuple[Condition, ...]


ConditionKind = AttributeCondition | CountCondition | SumCondition | AgeCondition | SegmentCondition | ConditionGroup


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of a group: exactly one kind, possibly negated."""

    kind: ConditionKind | None
    negate: bool = False


_KIND_NAMES = {
    AttributeCondition: "attribute",
    CountCondition: "count",
    SumCondition: "sum",
    AgeCondition: "age",
    SegmentCondition: "segment",
    ConditionGroup: "group",
}
_COMPARISONS = {Operator(op.value): op for op in Op}


def compile_conditions(group: ConditionGroup, catalogue: Catalogue, *, field: str = "segment.conditions") -> Node:
    """The syntax tree of a structured definition; `InvalidArgument` with every problem."""
    compiler = _Compiler(catalogue)
    node = compiler.group(group, field, 1)
    if compiler.violations:
        raise InvalidArgument(f"the conditions have {len(compiler.violations)} problem(s)", compiler.violations)
    return node


class _Compiler:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.violations: list[FieldViolation] = []

    def add(self, path: str, problem: str | None) -> bool:
        """Record ``problem`` on ``path`` if there is one; whether there was."""
        if problem is not None:
            self.violations.append(FieldViolation(path, problem))
        return problem is not None

    def group(self, group: ConditionGroup, path: str, depth: int) -> Node:
        if depth > MAX_GROUP_DEPTH:
            self.add(path, f"groups nest at most {MAX_GROUP_DEPTH} deep")
            return Constant(False)
        if group.operator is None:
            self.add(f"{path}.operator", "is required (all or any)")
        if not 1 <= len(group.conditions) <= MAX_CONDITIONS:
            self.add(f"{path}.conditions", f"a group has 1 to {MAX_CONDITIONS} conditions")
        nodes = [self.condition(c, f"{path}.conditions[{i}]", depth) for i, c in enumerate(group.conditions)]
        if not nodes:
            return Constant(False)
        return any_of(nodes) if group.operator is GroupOperator.ANY else all_of(nodes)

    def condition(self, condition: Condition, path: str, depth: int) -> Node:
        kind = condition.kind
        if kind is None:
            self.add(path, "set exactly one of attribute, count, sum, age, segment or group")
            return Constant(False)
        sub = f"{path}.{_KIND_NAMES[type(kind)]}"
        node: Node
        if isinstance(kind, ConditionGroup):
            node = self.group(kind, sub, depth + 1)
        elif isinstance(kind, SegmentCondition):
            self.add(f"{sub}.segment_id", segment_id_problem(kind.segment_id))
            node = InSegment(kind.segment_id, Location(f"{sub}.segment_id"))
        elif isinstance(kind, AttributeCondition):
            node = self.attribute(kind, sub)
        elif isinstance(kind, CountCondition | SumCondition):
            node = self.aggregate(kind, sub)
        else:
            node = self.age(kind, sub)
        return Not(node) if condition.negate else node

    def attribute(self, condition: AttributeCondition, path: str) -> Node:
        name = condition.attribute
        attributes = self.catalogue.attributes
        term: Term
        if name == SIGNUP_AGE and "signup_at" in attributes:
            term = Age(Attribute("signup_at", ValueType.TIME))
        elif name in attributes and attributes[name] is ValueType.TIME:
            self.add(f"{path}.attribute", f"{name} is a time: test it with an age condition")
            return Constant(False)
        elif name in attributes:
            term = Attribute(name, attributes[name])
        else:
            hint = suggestion(name, (*attributes, SIGNUP_AGE))
            self.add(f"{path}.attribute", f"unknown attribute {name!r}{hint}" if name else "is required")
            return Constant(False)
        return self.comparison(term, condition.operator, condition.values, path)

    def aggregate(self, condition: CountCondition | SumCondition, path: str) -> Node:
        known = not self.add(f"{path}.event_type", event_type_problem(self.catalogue, condition.event_type))
        days = None
        if condition.window is not None and not self.add(f"{path}.window", window_problem(condition.window)):
            days = condition.window.days
        if isinstance(condition, CountCondition):
            return self.comparison(Count(condition.event_type, days), condition.operator, condition.values, path)
        if known:
            self.add(f"{path}.property", summed_problem(self.catalogue, condition.event_type, condition.property))
        term = Sum(condition.event_type, condition.property, days)
        return self.comparison(term, condition.operator, condition.values, path)

    def age(self, condition: AgeCondition, path: str) -> Node:
        subjects = [
            (name, value)
            for name, value in (
                ("attribute", condition.attribute),
                ("first_event_type", condition.first_event_type),
                ("last_event_type", condition.last_event_type),
            )
            if value
        ]
        if len(subjects) != 1:
            self.add(path, "set exactly one of attribute, first_event_type or last_event_type")
            return Constant(False)
        subject, name = subjects[0]
        of: Attribute | Occurrence
        if subject == "attribute":
            if self.catalogue.attributes.get(name) is not ValueType.TIME:
                times = ", ".join(sorted(a for a, t in self.catalogue.attributes.items() if t is ValueType.TIME))
                self.add(f"{path}.attribute", f"{name!r} is not a time attribute (time attributes: {times})")
            of = Attribute(name, ValueType.TIME)
        else:
            self.add(f"{path}.{subject}", event_type_problem(self.catalogue, name))
            of = Occurrence(Which.FIRST if subject == "first_event_type" else Which.LAST, name)
        op = None if condition.operator is None else _COMPARISONS.get(condition.operator)
        if op is None:
            self.add(f"{path}.operator", "is required: one of ==, !=, <, <=, >, >= (<= is 'within')")
        if condition.age is None:
            self.add(f"{path}.age", "is required")
            return Constant(False)
        self.add(f"{path}.age", duration_problem(condition.age))
        return Compare(Age(of), op or Op.LE, condition.age)

    def comparison(self, term: Term, operator: Operator | None, values: Sequence[Value], path: str) -> Node:
        if operator is None:
            self.add(f"{path}.operator", "is required")
            return Constant(False)
        in_list = operator in (Operator.IN, Operator.NOT_IN)
        op = _COMPARISONS.get(operator)
        self.add(f"{path}.operator", operator_problem(term, op, in_list=in_list))
        if in_list and not 1 <= len(values) <= MAX_LIST_LENGTH:
            self.add(f"{path}.values", f"{operator.value} takes 1 to {MAX_LIST_LENGTH} values")
        elif not in_list and len(values) != 1:
            self.add(f"{path}.values", f"{operator.value} takes exactly one value (use in for several)")
        for i, value in enumerate(values):
            self.add(f"{path}.values[{i}]", literal_problem(term, value))
        if not values:
            return Constant(False)
        if op is None:
            return InList(term, tuple(values), operator is Operator.NOT_IN)
        return Compare(term, op, values[0])
