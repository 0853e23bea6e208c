"""Segments between the wire and the service: the definition's two forms (expression or
`ConditionGroup`) and the messages built from a stored segment.

The structured form converts one to one into `domain.segments_conditions` (enums
unspecified become None, an unset oneof becomes an empty kind), so every judgement about
it, with its field path, is the domain's. Only what the domain types cannot hold is
refused here: a `Literal` with no value, and durations finer than a microsecond.
"""

from __future__ import annotations

from datetime import timedelta

from furima.marketing.v1 import segment_service_pb2 as pb
from google.protobuf.duration_pb2 import Duration

from libs.errors import Violations
from libs.pb import timestamp
from services.marketing.domain.segment_records import Segment, SegmentDraft
from services.marketing.domain.segments_ast import Value
from services.marketing.domain.segments_conditions import (
    AgeCondition,
    AttributeCondition,
    Condition,
    ConditionGroup,
    ConditionKind,
    CountCondition,
    GroupOperator,
    Operator,
    SegmentCondition,
    SumCondition,
)

_GROUP = {pb.GROUP_OPERATOR_ALL: GroupOperator.ALL, pb.GROUP_OPERATOR_ANY: GroupOperator.ANY}
_GROUP_PB = {v: k for k, v in _GROUP.items()}
_OPERATOR = {
    pb.OPERATOR_EQ: Operator.EQ,
    pb.OPERATOR_NE: Operator.NE,
    pb.OPERATOR_LT: Operator.LT,
    pb.OPERATOR_LE: Operator.LE,
    pb.OPERATOR_GT: Operator.GT,
    pb.OPERATOR_GE: Operator.GE,
    pb.OPERATOR_IN: Operator.IN,
    pb.OPERATOR_NOT_IN: Operator.NOT_IN,
}
_OPERATOR_PB = {v: k for k, v in _OPERATOR.items()}


def draft_from_pb(message: pb.Segment) -> SegmentDraft:
    """The caller's segment (output-only fields ignored); INVALID_ARGUMENT for what only
    the wire can get wrong, on ``segment.conditions...``.
    """
    form = message.WhichOneof("definition")
    definition: str | ConditionGroup | None = None
    if form == "expression":
        definition = message.expression
    elif form == "conditions":
        problems = Violations()
        definition = _group(message.conditions, "segment.conditions", problems)
        problems.raise_if_any("the conditions have values the segment language cannot hold")
    return SegmentDraft(message.segment_id, message.display_name, message.description, definition)


def _group(message: pb.ConditionGroup, path: str, problems: Violations) -> ConditionGroup:
    return ConditionGroup(
        _GROUP.get(message.operator),
        tuple(_condition(c, f"{path}.conditions[{i}]", problems) for i, c in enumerate(message.conditions)),
    )


def _condition(message: pb.Condition, path: str, problems: Violations) -> Condition:
    which = message.WhichOneof("kind")
    sub = f"{path}.{which}"
    kind: ConditionKind | None = None
    if which == "group":
        kind = _group(message.group, sub, problems)
    elif which == "segment":
        kind = SegmentCondition(message.segment.segment_id)
    elif which == "attribute":
        a = message.attribute
        values = tuple(_literal(v, f"{sub}.values[{i}]", problems) for i, v in enumerate(a.values))
        kind = AttributeCondition(a.attribute, _OPERATOR.get(a.operator), values)
    elif which == "count":
        c = message.count
        window = _duration(c.window, f"{sub}.window", problems) if c.HasField("window") else None
        kind = CountCondition(c.event_type, window, _OPERATOR.get(c.operator), tuple(c.values))
    elif which == "sum":
        s = message.sum
        window = _duration(s.window, f"{sub}.window", problems) if s.HasField("window") else None
        kind = SumCondition(s.event_type, s.property, window, _OPERATOR.get(s.operator), tuple(s.values))
    elif which == "age":
        g = message.age
        age = _duration(g.age, f"{sub}.age", problems) if g.HasField("age") else None
        kind = AgeCondition(_OPERATOR.get(g.operator), age, g.attribute, g.first_event_type, g.last_event_type)
    return Condition(kind, message.negate)


def _literal(message: pb.Literal, path: str, problems: Violations) -> Value:
    which = message.WhichOneof("value")
    if which == "string_value":
        return message.string_value
    if which == "int_value":
        return message.int_value
    if which == "bool_value":
        return message.bool_value
    if which == "duration_value":
        return _duration(message.duration_value, path, problems)
    problems.add(path, "set one of string_value, int_value, bool_value or duration_value")
    return ""


def _duration(message: Duration, path: str, problems: Violations) -> timedelta:
    if message.nanos % 1000:
        problems.add(path, "a duration is a whole number of minutes")
    return timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)


def segment_pb(segment: Segment) -> pb.Segment:
    """A stored segment as a message (the definition in the form it was given)."""
    message = pb.Segment(
        segment_id=segment.segment_id,
        display_name=segment.display_name,
        description=segment.description,
        canonical_expression=segment.canonical_expression,
        referenced_segment_ids=segment.referenced_segment_ids,
        event_types=segment.event_types,
        time_sensitive=segment.time_sensitive,
        version=segment.version,
        created_at=timestamp(segment.created_at),
        updated_at=timestamp(segment.updated_at),
    )
    if isinstance(segment.definition, str):
        message.expression = segment.definition
    else:
        message.conditions.CopyFrom(conditions_pb(segment.definition))
    return message


def conditions_pb(group: ConditionGroup) -> pb.ConditionGroup:
    """Structured conditions as a message."""
    operator = pb.GROUP_OPERATOR_UNSPECIFIED if group.operator is None else _GROUP_PB[group.operator]
    return pb.ConditionGroup(operator=operator, conditions=[_condition_pb(c) for c in group.conditions])


def _operator_pb(operator: Operator | None) -> pb.Operator:
    return pb.OPERATOR_UNSPECIFIED if operator is None else _OPERATOR_PB[operator]


def _duration_pb(value: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(value)
    return out


def _literal_pb(value: Value) -> pb.Literal:
    if isinstance(value, bool):
        return pb.Literal(bool_value=value)
    if isinstance(value, int):
        return pb.Literal(int_value=value)
    if isinstance(value, str):
        return pb.Literal(string_value=value)
    return pb.Literal(duration_value=_duration_pb(value))


def _condition_pb(condition: Condition) -> pb.Condition:
    out = pb.Condition(negate=condition.negate)
    kind = condition.kind
    if isinstance(kind, ConditionGroup):
        out.group.CopyFrom(conditions_pb(kind))
    elif isinstance(kind, SegmentCondition):
        out.segment.segment_id = kind.segment_id
    elif isinstance(kind, AttributeCondition):
        out.attribute.CopyFrom(
            pb.AttributeCondition(
                attribute=kind.attribute,
                operator=_operator_pb(kind.operator),
                values=[_literal_pb(v) for v in kind.values],
            )
        )
    elif isinstance(kind, CountCondition):
        out.count.CopyFrom(
            pb.CountCondition(event_type=kind.event_type, operator=_operator_pb(kind.operator), values=kind.values)
        )
        if kind.window is not None:
            out.count.window.CopyFrom(_duration_pb(kind.window))
    elif isinstance(kind, SumCondition):
        out.sum.CopyFrom(
            pb.SumCondition(
                event_type=kind.event_type,
                property=kind.property,
                operator=_operator_pb(kind.operator),
                values=kind.values,
            )
        )
        if kind.window is not None:
            out.sum.window.CopyFrom(_duration_pb(kind.window))
    elif isinstance(kind, AgeCondition):
        age = pb.AgeCondition(operator=_operator_pb(kind.operator))
        if kind.attribute:
            age.attribute = kind.attribute
        elif kind.first_event_type:
            age.first_event_type = kind.first_event_type
        elif kind.last_event_type:
            age.last_event_type = kind.last_event_type
        if kind.age is not None:
            age.age.CopyFrom(_duration_pb(kind.age))
        out.age.CopyFrom(age)
    return out
