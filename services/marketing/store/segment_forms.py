"""The structured form of a segment definition (`ConditionGroup`) as stored JSON, so a
segment created with conditions is given back as the very conditions it was created with.

Each condition is an object with one key naming its kind (``attribute``, ``count``,
``sum``, ``age``, ``segment``, ``group``) and an optional ``negate``; literals carry their
type (``{"s": "kanto"}``, ``{"i": 3}``, ``{"b": true}``, ``{"us": 604800000000}``:
durations in microseconds), so reading back never guesses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

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

_MICROSECOND = timedelta(microseconds=1)


def dump_conditions(group: ConditionGroup) -> str:
    """The conditions as a JSON document."""
    return orjson.dumps(_group(group), option=orjson.OPT_SORT_KEYS).decode()


def load_conditions(document: str) -> ConditionGroup:
    """Conditions back from `dump_conditions`."""
    return _read_group(orjson.loads(document))


def _value(value: Value) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": value}
    if isinstance(value, str):
        return {"s": value}
    return {"us": value // _MICROSECOND}


def _read_value(data: dict[str, Any]) -> Value:
    if "b" in data:
        return bool(data["b"])
    if "i" in data:
        return int(data["i"])
    if "s" in data:
        return str(data["s"])
    return timedelta(microseconds=int(data["us"]))


def _duration(value: timedelta | None) -> int | None:
    return None if value is None else value // _MICROSECOND


def _read_duration(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(microseconds=value)


def _operator(op: Operator | None) -> str | None:
    return None if op is None else op.value


def _read_operator(value: str | None) -> Operator | None:
    return None if value is None else Operator(value)


def _group(group: ConditionGroup) -> dict[str, Any]:
    return {
        "operator": None if group.operator is None else group.operator.value,
        "conditions": [_condition(c) for c in group.conditions],
    }


def _read_group(data: dict[str, Any]) -> ConditionGroup:
    operator = data["operator"]
    return ConditionGroup(
        None if operator is None else GroupOperator(operator),
        tuple(_read_condition(c) for c in data["conditions"]),
    )


def _condition(condition: Condition) -> dict[str, Any]:
    out: dict[str, Any] = {"negate": condition.negate}
    kind = condition.kind
    if isinstance(kind, ConditionGroup):
        out["group"] = _group(kind)
    elif isinstance(kind, AttributeCondition):
        out["attribute"] = {
            "attribute": kind.attribute,
            "operator": _operator(kind.operator),
            "values": [_value(v) for v in kind.values],
        }
    elif isinstance(kind, CountCondition | SumCondition):
        aggregate: dict[str, Any] = {
            "event_type": kind.event_type,
            "window": _duration(kind.window),
            "operator": _operator(kind.operator),
            "values": list(kind.values),
        }
        if isinstance(kind, SumCondition):
            aggregate["property"] = kind.property
        out["sum" if isinstance(kind, SumCondition) else "count"] = aggregate
    elif isinstance(kind, AgeCondition):
        out["age"] = {
            "operator": _operator(kind.operator),
            "age": _duration(kind.age),
            "attribute": kind.attribute,
            "first_event_type": kind.first_event_type,
            "last_event_type": kind.last_event_type,
        }
    elif isinstance(kind, SegmentCondition):
        out["segment"] = {"segment_id": kind.segment_id}
    return out


def _read_condition(data: dict[str, Any]) -> Condition:
    kind: ConditionKind | None = None
    if "group" in data:
        kind = _read_group(data["group"])
    elif "attribute" in data:
        a = data["attribute"]
        kind = AttributeCondition(
            a["attribute"], _read_operator(a["operator"]), tuple(_read_value(v) for v in a["values"])
        )
    elif "count" in data:
        c = data["count"]
        kind = CountCondition(
            c["event_type"], _read_duration(c["window"]), _read_operator(c["operator"]), tuple(c["values"])
        )
    elif "sum" in data:
        s = data["sum"]
        kind = SumCondition(
            s["event_type"],
            s["property"],
            _read_duration(s["window"]),
            _read_operator(s["operator"]),
            tuple(s["values"]),
        )
    elif "age" in data:
        g = data["age"]
        kind = AgeCondition(
            _read_operator(g["operator"]),
            _read_duration(g["age"]),
            g["attribute"],
            g["first_event_type"],
            g["last_event_type"],
        )
    elif "segment" in data:
        kind = SegmentCondition(data["segment"]["segment_id"])
    return Condition(kind, bool(data["negate"]))
