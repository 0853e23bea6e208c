"""The segment language: every construct parses to the expected tree with the usual
precedence, mistakes are reported with their column and what was expected, the
structured form compiles to the same tree (so both forms evaluate identically), segment
references are checked for existence, cycles and depth, and evaluation on hand-built
facts gives hand-computed answers and agrees with a brute-force oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.marketing.domain import facts
from services.marketing.domain.events import DEFAULT_CATALOGUE, Catalogue, EventTypeSpec, UserEvent, ValueType
from services.marketing.domain.facts import UserFacts
from services.marketing.domain.segments import (
    check_references,
    compile_definition,
    dependencies,
    evaluate,
    matches_properties,
    parse_expression,
    parse_property_filter,
    render,
)
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
    Value,
    Which,
    all_of,
    any_of,
)
from services.marketing.domain.segments_conditions import (
    AgeCondition,
    AttributeCondition,
    Condition,
    ConditionGroup,
    CountCondition,
    GroupOperator,
    Operator,
    SegmentCondition,
    SumCondition,
    compile_conditions,
)

STRING, INT, BOOL, TIME = ValueType.STRING, ValueType.INT, ValueType.BOOL, ValueType.TIME
DAY = timedelta(days=1)
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

CATALOGUE = Catalogue(
    {
        "item_listed": EventTypeSpec(
            "item_listed",
            "listed",
            properties={"category": STRING, "price": INT, "first_time": BOOL},
            summed=frozenset({"price"}),
        ),
        "payment_captured": EventTypeSpec(
            "payment_captured",
            "paid",
            properties={"amount": INT, "pay_later": BOOL},
            summed=frozenset({"amount"}),
        ),
        "app_opened": EventTypeSpec("app_opened", "opened"),
        "signed_up": EventTypeSpec("signed_up", "signed up", stamps="signup_at"),
    },
    {"region": STRING, "timezone": STRING, "tier": INT, "vip": BOOL, "signup_at": TIME, "verified_at": TIME},
)

REGION = Attribute("region", STRING)
TIER = Attribute("tier", INT)
VIP = Attribute("vip", BOOL)
SIGNUP_AT = Attribute("signup_at", TIME)


def p(text: str) -> Node:
    return parse_expression(text, CATALOGUE)


def violations(text: str) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        p(text)
    assert {v.field for v in raised.value.violations} == {"segment.expression"}
    return [v.description for v in raised.value.violations]


# Parsing: every construct.


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('region == "kanto"', Compare(REGION, Op.EQ, "kanto")),
        ('region != "kanto"', Compare(REGION, Op.NE, "kanto")),
        ("tier < 3", Compare(TIER, Op.LT, 3)),
        ("tier <= -3", Compare(TIER, Op.LE, -3)),
        ("tier > 1_000", Compare(TIER, Op.GT, 1000)),
        ("tier >= 0", Compare(TIER, Op.GE, 0)),
        ('region in ["kanto", "kansai"]', InList(REGION, ("kanto", "kansai"))),
        ("tier not in [1, 2]", InList(TIER, (1, 2), negated=True)),
        ("vip", Compare(VIP, Op.EQ, True)),
        ("vip == false", Compare(VIP, Op.EQ, False)),
        ("count(app_opened) > 0", Compare(Count("app_opened"), Op.GT, 0)),
        ("count(item_listed, 30d) >= 1", Compare(Count("item_listed", 30), Op.GE, 1)),
        ("count(item_listed, 24h) == 1", Compare(Count("item_listed", 1), Op.EQ, 1)),
        ("count(item_listed, 2w) in [1, 2]", InList(Count("item_listed", 14), (1, 2))),
        ("sum(payment_captured.amount) > 10000", Compare(Sum("payment_captured", "amount"), Op.GT, 10000)),
        ("sum(payment_captured.amount, 90d) > 0", Compare(Sum("payment_captured", "amount", 90), Op.GT, 0)),
        (
            "first(payment_captured) within 7d",
            Compare(Age(Occurrence(Which.FIRST, "payment_captured")), Op.LE, 7 * DAY),
        ),
        ("last(app_opened) ago > 30d", Compare(Age(Occurrence(Which.LAST, "app_opened")), Op.GT, 30 * DAY)),
        ("signup_at within 90m", Compare(Age(SIGNUP_AT), Op.LE, timedelta(minutes=90))),
        ("signup_age < 14d", Compare(Age(SIGNUP_AT), Op.LT, 14 * DAY)),
        ("signup_at ago < 14d", Compare(Age(SIGNUP_AT), Op.LT, 14 * DAY)),
        ('in_segment("churned")', InSegment("churned")),
        ("true", Constant(True)),
        ("false", Constant(False)),
        ('region == "say \\"hi\\"\\n\\t\\\\"', Compare(REGION, Op.EQ, 'say "hi"\n\t\\')),
        ('region == "東京"', Compare(REGION, Op.EQ, "東京")),
    ],
)
def test_each_construct_parses(text: str, tree: Node) -> None:
    """Each construct of the grammar gives its node."""
    assert p(text) == tree


def test_the_issue_example() -> None:
    """The example of the issue parses into six conditions and renders back as written."""
    text = (
        'region == "kanto" and count(item_listed, 30d) >= 1 and not in_segment("churned") and '
        "first(payment_captured) within 7d and sum(payment_captured.amount, 90d) > 10000 and signup_age < 14d"
    )
    tree = p(text)
    assert isinstance(tree, And)
    assert len(tree.operands) == 6
    assert tree.operands[2] == Not(InSegment("churned"))
    assert render(tree) == text


A, B, C = (Compare(TIER, Op.EQ, n) for n in (1, 2, 3))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("tier == 1 or tier == 2 and tier == 3", Or((A, And((B, C))))),
        ("tier == 1 and tier == 2 or tier == 3", Or((And((A, B)), C))),
        ("(tier == 1 or tier == 2) and tier == 3", And((Or((A, B)), C))),
        ("not tier == 1 and tier == 2", And((Not(A), B))),
        ("not (tier == 1 and tier == 2)", Not(And((A, B)))),
        ("not not tier == 1", Not(Not(A))),
        ("tier == 1 and (tier == 2 and tier == 3)", And((A, B, C))),
        ("((tier == 1))", A),
        ("tier == 1 or (tier == 2 or tier == 3)", Or((A, B, C))),
    ],
)
def test_precedence_not_binds_tighter_than_and_than_or(text: str, tree: Node) -> None:
    """Precedence is not > and > or; parentheses group; same-operator chains flatten."""
    assert p(text) == tree


def test_whitespace_is_free() -> None:
    """Spaces, tabs and newlines between tokens do not matter."""
    assert p("count( item_listed ,30d )>=1\n\tand\nvip") == p("count(item_listed, 30d) >= 1 and vip")


def test_canonical_rendering() -> None:
    """Rendering is one canonical spelling: minimal parentheses, largest exact duration unit."""
    tree = p("not (vip or tier>1) and last(app_opened) ago <= 1440m and signup_at ago >= 36h")
    assert render(tree) == "not (vip == true or tier > 1) and last(app_opened) within 1d and signup_age >= 36h"


# Errors: the column and what was expected.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('regoin == "kanto"', "column 1: unknown attribute 'regoin'; did you mean 'region'?"),
        ("count(item_lsted) > 1", "column 7: unknown event type 'item_lsted'; did you mean 'item_listed'?"),
        ("cnt(app_opened) > 1", "column 1: unknown function 'cnt'; did you mean 'count'?"),
        ("tier = 1", "column 6: unexpected '='; '=' is not an operator; use '=='"),
        ("tier == 1 && vip", "column 11: unexpected '&'; use 'and'"),
        ("region == 'x'", 'column 11: unexpected "\'"; strings are in double quotes'),
        ("tier ==", "column 8: expected a value"),
        ("tier == 1 vip", "column 11: expected 'and', 'or' or the end of the expression, found 'vip'"),
        ("tier == 1 AND vip", "found 'AND' (keywords are lowercase: 'and')"),
        ("(tier == 1", "column 11: expected 'and', 'or' or ')' to close the '(' at column 1, found end of expression"),
        ("tier == 1)", "column 10: expected 'and', 'or' or the end of the expression, found ')'"),
        ("tier == 1 and", "column 14: expected a condition"),
        ("and tier == 1", "column 1: expected a condition"),
        ("tier", "column 5: expected a comparison (==, !=, <, <=, >, >=, in or not in) after tier"),
        ('region < "a"', "column 8: region is a string: compare it with ==, != or in, not <"),
        ("vip > true", "column 5: vip is a boolean: compare it with ==, !=, not >"),
        ('tier == "1"', 'column 9: tier is a whole number; compare it with a whole number, not "1"'),
        ("count(app_opened) > 7d", "column 21: count(app_opened) is a whole number; compare it with a whole number"),
        ("signup_age < 14", "column 14: signup_age is a duration; compare it with a duration such as 7d, not 14"),
        ("vip in [true]", "column 5: vip is a boolean: 'in' takes strings or whole numbers"),
        ("tier in []", "column 10: expected at least one value in the list, found ']'"),
        ("tier in [1, 2", "column 14: expected ',' or ']' in the list, found end of expression"),
        ("count(item_listed, 36h) > 1", "column 20: a window is a whole number of days (24h is 1d), not 36h"),
        ("count(item_listed, 400d) > 1", "column 20: a window is at most 365d"),
        ("count(item_listed, 30) > 1", "column 20: expected a window such as 30d, found '30'"),
        ('count("item_listed") > 1', "column 7: expected an event type name (without quotes)"),
        ("sum(item_listed) > 1", "column 16: expected '.' and a summed property after the event type"),
        ("sum(item_listed.category) > 1", "column 17: item_listed.category is not summed"),
        ("sum(item_listed.cost, 7d) > 1", "column 17: item_listed.cost is not a property"),
        ("first(app_opened, 7d) within 1d", "column 17: expected ')' after the event type (first() takes no window)"),
        ("first(app_opened) > 1d", "column 19: first(app_opened) is a time: expected 'within' and a duration"),
        ("signup_at == 1d", "column 11: signup_at is a time"),
        ("count(app_opened) within 7d", "('within' follows first(...), last(...) or a time attribute)"),
        ("last(app_opened) within 7", "column 25: expected a duration such as 7d after 'within'"),
        ("in_segment(churned)", 'column 12: expected a segment id in double quotes, as in in_segment("churned")'),
        ('in_segment("Churned!")', "column 12: 'Churned!' is not a segment id"),
        ("count(app_opened, 7days) > 1", "column 20: unknown duration unit 'days'; use m, h, d or w"),
        ("tier > 1.5", "column 8: numbers are whole (amounts are in minor units)"),
        ("tier > 99999999999999999999", "column 8: the number does not fit in 64 bits"),
        ('region == "open', "column 11: unterminated string"),
        ('region == "a\\qb"', "column 13: unknown escape in a string"),
        ("tier > 1 #", "column 10: unexpected '#'"),
        ("tier > -", "column 8: unexpected '-'"),
        ("tier > -7d", "column 8: a duration cannot be negative"),
        ("signup_at within 9999999999999999w", "column 18: the duration is too long"),
        ("signup_at within 36501d", "column 18: a duration is at most 36500d"),
        ('region == "a\x01"', "column 13: a string may not contain control characters"),
        ("sum(item_listed.) > 1", "column 17: expected a property name, found ')'"),
        ("count(7) > 1", "column 7: expected an event type name, found '7'"),
    ],
)
def test_errors_name_the_column_and_what_was_expected(text: str, expected: str) -> None:
    """Each mistake is one violation on segment.expression, starting with its column."""
    found = violations(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected) or expected in found[0], found[0]


def test_problems_of_meaning_are_all_reported_at_once() -> None:
    """Unknown names, bad windows and wrong types do not stop the parse: all come back, in column order."""
    found = violations('regoin == "x" and count(item_lsted, 400d) > "a" and last(nope) within 1d')
    assert [d.split(":")[0] for d in found] == ["column 1", "column 25", "column 37", "column 45", "column 58"]


@pytest.mark.parametrize(
    "text",
    [
        'nope within 7d and tier == "x"',
        'nope ago > 1d and tier == "x"',
        'nope not in [1, 2] and tier == "x"',
        'nope in [1] and tier == "x"',
        'nope == 1 and tier == "x"',
        'nope and tier == "x"',
    ],
)
def test_parsing_goes_on_after_an_unknown_name(text: str) -> None:
    """Whatever follows an unknown name is skipped as a comparison, so later problems are found too."""
    found = violations(text)
    assert found[0] == "column 1: unknown attribute 'nope'"
    assert found[1].endswith('tier is a whole number; compare it with a whole number, not "x"')


def test_a_syntax_error_after_problems_of_meaning_keeps_them() -> None:
    """Problems found before the parse stopped are reported with the syntax error."""
    found = violations("regoin == 1 and (")
    assert found == [
        "column 1: unknown attribute 'regoin'; did you mean 'region'?",
        "column 18: expected a condition (an attribute, count(...), sum(...), first(...), last(...), "
        "in_segment(...), not or '('), found end of expression",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is required"),
        ("   \n", "is required"),
        ("vip or " * 700 + "vip", "at most 4096 characters"),
        ("(" * 40 + "vip" + ")" * 40, "column 33: nested more than 32 deep"),
        ("not " * 40 + "vip", "column 129: nested more than 32 deep"),
        ("tier in [" + ", ".join(["1"] * 101) + "]", "column 9: a list has at most 100 values"),
    ],
)
def test_limits(text: str, expected: str) -> None:
    """Empty, too long, too deep and too-long lists are refused plainly."""
    assert violations(text) == [expected]


def test_violations_use_the_given_field() -> None:
    """The field path is the caller's (a campaign, a preview...)."""
    with pytest.raises(InvalidArgument) as raised:
        parse_expression("nope", CATALOGUE, field="request.segment.expression")
    assert raised.value.violations == [
        FieldViolation("request.segment.expression", "column 1: unknown attribute 'nope'")
    ]


def test_the_default_catalogue_has_the_documented_vocabulary() -> None:
    """The docs' examples parse against the shipped catalogue."""
    for text in (
        'region == "kanto" and count(item_listed, 30d) >= 1 and signup_age < 14d',
        "first(pay_later_used) within 1d and sum(payment_captured.amount, 90d) > 10000",
        'last(payment_captured) ago > 60d and standing == "GOOD"',
    ):
        parse_expression(text, DEFAULT_CATALOGUE)


# The structured form compiles to the same tree.


def group(*conditions: Condition, operator: GroupOperator = GroupOperator.ALL) -> ConditionGroup:
    return ConditionGroup(operator, conditions)


def c(kind: object, negate: bool = False) -> Condition:
    return Condition(kind, negate)  # type: ignore[arg-type]


STRUCTURED_PAIRS = [
    (
        group(
            c(AttributeCondition("region", Operator.EQ, ("kanto",))),
            c(CountCondition("item_listed", 30 * DAY, Operator.GE, (1,))),
            c(SegmentCondition("churned"), negate=True),
            c(AgeCondition(Operator.LE, 7 * DAY, first_event_type="payment_captured")),
            c(SumCondition("payment_captured", "amount", 90 * DAY, Operator.GT, (10000,))),
            c(AttributeCondition("signup_age", Operator.LT, (14 * DAY,))),
        ),
        'region == "kanto" and count(item_listed, 30d) >= 1 and not in_segment("churned") and '
        "first(payment_captured) within 7d and sum(payment_captured.amount, 90d) > 10000 and signup_age < 14d",
    ),
    (
        group(
            c(AttributeCondition("region", Operator.IN, ("kanto", "kansai"))),
            c(
                group(
                    c(AttributeCondition("vip", Operator.EQ, (True,))),
                    c(AgeCondition(Operator.GT, 30 * DAY, last_event_type="app_opened")),
                    operator=GroupOperator.ANY,
                ),
                negate=True,
            ),
            c(CountCondition("app_opened", None, Operator.NOT_IN, (0, 1))),
            c(AgeCondition(Operator.GE, timedelta(hours=36), attribute="verified_at")),
        ),
        'region in ["kanto", "kansai"] and not (vip or last(app_opened) ago > 30d) and '
        "count(app_opened) not in [0, 1] and verified_at ago >= 36h",
    ),
    (group(c(group(c(AttributeCondition("tier", Operator.NE, (2,)))))), "tier != 2"),
]


@pytest.mark.parametrize(("structured", "expression"), STRUCTURED_PAIRS)
def test_structured_form_compiles_to_the_expression_tree(structured: ConditionGroup, expression: str) -> None:
    """A structured definition and its expression are the same tree, so they evaluate identically."""
    tree = compile_conditions(structured, CATALOGUE)
    assert tree == p(expression)
    assert p(render(tree)) == tree


def test_structured_problems_name_field_paths() -> None:
    """Each problem of a structured definition is on the path of the field at fault."""
    structured = ConditionGroup(
        None,
        (
            c(AttributeCondition("regoin", Operator.EQ, ("x",))),
            c(CountCondition("item_listed", timedelta(hours=36), Operator.GE, (1,))),
            c(SumCondition("payment_captured", "fee", None, Operator.GT, (1, 2))),
            c(AgeCondition(Operator.IN, DAY, first_event_type="nope")),
            c(AgeCondition(Operator.LE, DAY)),
            c(AttributeCondition("region", Operator.LT, (1,))),
            c(AttributeCondition("signup_at", Operator.EQ, (DAY,))),
            c(SegmentCondition("Bad Id")),
            c(None),
            c(AttributeCondition("tier", None, (1,))),
            c(ConditionGroup(GroupOperator.ANY, ())),
            c(AttributeCondition("tier", Operator.IN, ())),
            c(AgeCondition(Operator.LE, -DAY, attribute="region")),
        ),
    )
    with pytest.raises(InvalidArgument) as raised:
        compile_conditions(structured, CATALOGUE)
    got = {(v.field.removeprefix("segment.conditions"), v.description) for v in raised.value.violations}
    assert got == {
        (".operator", "is required (all or any)"),
        (".conditions[0].attribute.attribute", "unknown attribute 'regoin'; did you mean 'region'?"),
        (".conditions[1].count.window", "a window is a whole number of days (24h is 1d), not 36h"),
        (
            ".conditions[2].sum.property",
            "payment_captured.fee is not a property (summed properties of payment_captured: amount)",
        ),
        (".conditions[2].sum.values", "> takes exactly one value (use in for several)"),
        (".conditions[3].age.first_event_type", "unknown event type 'nope'"),
        (".conditions[3].age.operator", "is required: one of ==, !=, <, <=, >, >= (<= is 'within')"),
        (".conditions[4].age", "set exactly one of attribute, first_event_type or last_event_type"),
        (".conditions[5].attribute.operator", "region is a string: compare it with ==, != or in, not <"),
        (".conditions[5].attribute.values[0]", 'region is a string; compare it with a string such as "kanto", not 1'),
        (".conditions[6].attribute.attribute", "signup_at is a time: test it with an age condition"),
        (
            ".conditions[7].segment.segment_id",
            "'Bad Id' is not a segment id (2-64 lowercase letters, digits, '_' and '-', starting with a letter)",
        ),
        (".conditions[8]", "set exactly one of attribute, count, sum, age, segment or group"),
        (".conditions[9].attribute.operator", "is required"),
        (".conditions[10].group.conditions", "a group has 1 to 50 conditions"),
        (".conditions[11].attribute.values", "in takes 1 to 100 values"),
        (".conditions[12].age.attribute", "'region' is not a time attribute (time attributes: signup_at, verified_at)"),
        (".conditions[12].age.age", "a duration cannot be negative"),
    }


def test_structured_values_are_checked_like_literals() -> None:
    """Durations in whole minutes and within a century, strings without control characters, an age present."""
    structured = group(
        c(AgeCondition(Operator.LE, timedelta(seconds=90), attribute="signup_at")),
        c(AgeCondition(Operator.GT, timedelta(days=40_000), last_event_type="app_opened")),
        c(AttributeCondition("region", Operator.IN, ("ok", "bad\x00"))),
        c(AgeCondition(Operator.GT, None, last_event_type="app_opened")),
    )
    with pytest.raises(InvalidArgument) as raised:
        compile_conditions(structured, CATALOGUE, field="f")
    assert raised.value.violations == [
        FieldViolation("f.conditions[0].age.age", "a duration is a whole number of minutes"),
        FieldViolation("f.conditions[1].age.age", "a duration is at most 36500d"),
        FieldViolation("f.conditions[2].attribute.values[1]", "a string may not contain control characters"),
        FieldViolation("f.conditions[3].age.age", "is required"),
    ]


def test_structured_groups_nest_at_most_sixteen_deep() -> None:
    """A pathological nesting is one violation, not a stack overflow."""
    structured = group(c(AttributeCondition("vip", Operator.EQ, (True,))))
    for _ in range(20):
        structured = group(c(structured))
    with pytest.raises(InvalidArgument, match="problem") as raised:
        compile_conditions(structured, CATALOGUE)
    assert [v.description for v in raised.value.violations] == ["groups nest at most 16 deep"]


# References between segments.

SAVED: dict[str, Node] = {
    "churned": p("last(app_opened) ago > 60d"),
    "buyers": p("count(payment_captured) > 0"),
    "loyal": p('in_segment("buyers") and not in_segment("churned")'),
    "vip-loyal": p('vip and in_segment("loyal")'),
}


def test_references_to_saved_segments_are_fine() -> None:
    """A definition that refers to existing, acyclic segments passes."""
    node = compile_definition('in_segment("vip-loyal") or in_segment("buyers")', CATALOGUE, SAVED.get, segment_id="new")
    assert dependencies(node).segments == {"vip-loyal", "buyers"}


def test_unknown_and_self_references_are_refused_at_their_column() -> None:
    """Unknown segments and a segment referring to itself are violations at the in_segment."""
    with pytest.raises(InvalidArgument) as raised:
        compile_definition('in_segment("nope") and vip or in_segment("me")', CATALOGUE, SAVED.get, segment_id="me")
    assert raised.value.violations == [
        FieldViolation("segment.expression", "column 1: unknown segment 'nope'"),
        FieldViolation("segment.expression", 'column 31: in_segment("me") refers to the segment being defined'),
    ]


def test_a_cycle_through_other_segments_is_refused() -> None:
    """Redefining "buyers" to refer to "vip-loyal" would close buyers → vip-loyal → loyal → buyers."""
    with pytest.raises(InvalidArgument) as raised:
        compile_definition('vip and in_segment("vip-loyal")', CATALOGUE, SAVED.get, segment_id="buyers")
    assert raised.value.violations == [
        FieldViolation(
            "segment.expression",
            'column 9: in_segment("vip-loyal") makes a cycle: buyers → vip-loyal → loyal → buyers',
        )
    ]


def test_a_cycle_in_the_structured_form_is_reported_on_its_path() -> None:
    """The structured form reports the same problem on the condition's segment_id."""
    structured = group(c(AttributeCondition("vip", Operator.EQ, (True,))), c(SegmentCondition("loyal")))
    with pytest.raises(InvalidArgument) as raised:
        compile_definition(structured, CATALOGUE, SAVED.get, segment_id="churned")
    assert raised.value.violations == [
        FieldViolation(
            "segment.conditions.conditions[1].segment.segment_id",
            'in_segment("loyal") makes a cycle: churned → loyal → churned',
        )
    ]


def test_reference_chains_are_limited_in_depth() -> None:
    """A chain of more than eight segments is refused."""
    chain: dict[str, Node] = {"s0": p("vip")}
    for i in range(1, 10):
        chain[f"s{i}"] = p(f'in_segment("s{i - 1}")')
    check_references(p('in_segment("s6")'), chain.get, segment_id="top")
    with pytest.raises(InvalidArgument, match="refers") as raised:
        check_references(p('in_segment("s7")'), chain.get, segment_id="top")
    assert "nest deeper than 8: top → s7 → s6" in raised.value.violations[0].description


def test_each_unknown_reference_is_reported_once() -> None:
    """The same unknown segment named twice is one violation, at its first use."""
    with pytest.raises(InvalidArgument) as raised:
        check_references(p('in_segment("gone") or vip and in_segment("gone")'), SAVED.get)
    assert [v.description for v in raised.value.violations] == ["column 1: unknown segment 'gone'"]


def test_a_saved_segment_referring_to_a_vanished_one_is_reported() -> None:
    """A dangling reference further down the chain names the path to it."""
    saved = {**SAVED, "broken": p('in_segment("vanished")')}
    with pytest.raises(InvalidArgument) as raised:
        check_references(p('in_segment("broken")'), saved.get, segment_id="new")
    assert [v.description for v in raised.value.violations] == [
        "column 1: segment 'vanished' (through new → broken) does not exist"
    ]


def test_depth_is_the_longest_chain_even_through_a_segment_seen_before() -> None:
    """A segment first reached by a short path still counts at the end of a long one."""
    chain: dict[str, Node] = {"s0": p("vip")}
    for i in range(1, 8):
        chain[f"s{i}"] = p(f'in_segment("s{i - 1}")')
    chain["dd"] = p('in_segment("s0") or in_segment("s6")')
    with pytest.raises(InvalidArgument) as raised:
        check_references(p('in_segment("dd")'), chain.get, segment_id="top")
    assert raised.value.violations[0].description.endswith(
        "nest deeper than 8: top → dd → s6 → s5 → s4 → s3 → s2 → s1 → s0"
    )


def test_an_unsaved_definition_counts_as_a_level() -> None:
    """Without an id (a preview) the definition itself is still the top of the chain."""
    chain: dict[str, Node] = {"s0": p("vip")}
    for i in range(1, 8):
        chain[f"s{i}"] = p(f'in_segment("s{i - 1}")')
    check_references(p('in_segment("s6")'), chain.get)
    with pytest.raises(InvalidArgument) as raised:
        check_references(p('in_segment("s7")'), chain.get)
    assert "(this segment) → s7" in raised.value.violations[0].description


def test_preview_without_an_id_checks_only_existence() -> None:
    """An unsaved definition (no id yet) can refer to anything that exists."""
    check_references(p('in_segment("loyal")'), SAVED.get)


# Evaluation on hand-built facts.

_seq = iter(range(10**9))


def user_facts(*events: tuple[str, timedelta, dict[str, str | int | bool]], **attributes: object) -> UserFacts:
    user = UserFacts("u1")
    for kind, ago, props in events:
        facts.apply(user, UserEvent(f"e{next(_seq)}", "u1", kind, NOW - ago, props), CATALOGUE)
    for name, value in attributes.items():
        facts.set_attribute(user, name, value, NOW - 100 * DAY)  # type: ignore[arg-type]
    return user


ALICE = user_facts(
    ("signed_up", 10 * DAY, {}),
    ("item_listed", 3 * DAY, {"category": "books", "price": 1200}),
    ("item_listed", 40 * DAY, {"category": "toys", "price": 800}),
    ("payment_captured", 5 * DAY, {"amount": 9000}),
    ("payment_captured", 100 * DAY, {"amount": 4000}),
    ("app_opened", 2 * timedelta(hours=1), {}),
    region="kanto",
    tier=2,
    vip=False,
)
NEWBIE = user_facts()  # nothing at all

_DEFS: dict[str, Node] = {
    "listers": p("count(item_listed) >= 1"),
    "big-spenders": p("sum(payment_captured.amount) > 10000"),
    "kanto-listers": p('in_segment("listers") and region == "kanto"'),
}


@pytest.mark.parametrize(
    ("text", "alice", "newbie"),
    [
        ('region == "kanto"', True, False),
        ('region != "kanto"', False, False),
        ('not region == "kanto"', False, True),
        ('region in ["kansai", "kanto"]', True, False),
        ('region not in ["kansai"]', True, False),
        ("tier >= 2 and tier < 3", True, False),
        ("vip", False, False),
        ("not vip", True, True),
        ("vip == false", True, False),
        ("count(item_listed) == 2", True, False),
        ("count(item_listed, 30d) == 1", True, False),
        ("count(item_listed, 365d) == 2", True, False),
        ("count(item_listed) == 0", False, True),
        ("sum(item_listed.price) == 2000", True, False),
        ("sum(item_listed.price, 7d) == 1200", True, False),
        ("sum(payment_captured.amount, 90d) > 8999", True, False),
        ("sum(payment_captured.amount) == 13000", True, False),
        ("sum(payment_captured.amount, 90d) in [9000, 1]", True, False),
        ("first(item_listed) within 30d", False, False),
        ("first(item_listed) within 40d", True, False),
        ("last(item_listed) within 3d", True, False),
        ("last(payment_captured) ago > 4d", True, False),
        ("last(app_opened) ago <= 3h", True, False),
        ("first(payment_captured) ago == 100d", True, False),
        ("signup_age < 14d", True, False),
        ("signup_at within 9d", False, False),
        ("verified_at within 9999d", False, False),
        ('in_segment("listers")', True, False),
        ('in_segment("big-spenders")', True, False),
        ('in_segment("kanto-listers") and not in_segment("big-spenders")', False, False),
        ('in_segment("kanto-listers") or count(app_opened) == 0', True, True),
        ("true", True, True),
        ("false or false", False, False),
    ],
)
def test_evaluation_hand_computed(text: str, alice: bool, newbie: bool) -> None:
    """Hand-computed memberships; a comparison with something the user lacks is false."""
    node = p(text)
    assert evaluate(node, ALICE, NOW, _DEFS.get) is alice
    assert evaluate(node, NEWBIE, NOW, _DEFS.get) is newbie


def test_the_structured_and_expression_forms_evaluate_identically() -> None:
    """Each documented pair gives the same membership for users with different facts."""
    resolve = {"churned": p("last(app_opened) ago > 60d")}.get
    for structured, expression in STRUCTURED_PAIRS:
        for user in (ALICE, NEWBIE):
            left = evaluate(compile_conditions(structured, CATALOGUE), user, NOW, resolve)
            assert left == evaluate(p(expression), user, NOW, resolve)


def test_attribute_of_another_type_counts_as_missing() -> None:
    """A stored value whose type does not match the catalogue never matches (and never crashes)."""
    odd = user_facts(region=5, tier="two", vip=1)
    for text in ('region == "5"', "tier > 0", "vip", "not vip == true"):
        node = p(text)
        assert evaluate(node, odd, NOW) is (text == "not vip == true")


def test_a_missing_reference_at_evaluation_is_a_failed_precondition() -> None:
    """A reference that cannot be resolved any more is an error, not a silent false."""
    with pytest.raises(FailedPrecondition) as raised:
        evaluate(p('in_segment("gone")'), ALICE, NOW, _DEFS.get)
    assert raised.value.reason == "SEGMENT_REFERENCE_MISSING"


def test_a_cycle_at_evaluation_is_refused_not_looped() -> None:
    """Corrupt definitions that cycle fail fast at evaluation too."""
    loop = {"aa": p('in_segment("bb")'), "bb": p('in_segment("aa")')}
    with pytest.raises(FailedPrecondition) as raised:
        evaluate(p('in_segment("aa")'), ALICE, NOW, loop.get)
    assert raised.value.reason == "SEGMENT_REFERENCE_CYCLE"


def test_referenced_segments_are_evaluated_once() -> None:
    """A segment referred to several times is resolved and evaluated once per evaluation."""
    calls: list[str] = []

    def resolve(segment_id: str) -> Node | None:
        calls.append(segment_id)
        return _DEFS.get(segment_id)

    node = p('in_segment("kanto-listers") and in_segment("listers") and in_segment("kanto-listers")')
    assert evaluate(node, ALICE, NOW, resolve)
    assert sorted(calls) == ["kanto-listers", "listers"]


def test_dependencies() -> None:
    """Event types, attributes, references, and whether time alone can change membership."""
    deps = dependencies(p('region == "x" and count(item_listed) > 1 and in_segment("loyal")'))
    assert deps.event_types == {"item_listed"}
    assert deps.attributes == {"region"}
    assert deps.segments == {"loyal"}
    assert not deps.time_sensitive
    assert dependencies(p("not count(item_listed, 7d) > 1")).time_sensitive
    timed = dependencies(p("last(app_opened) within 1d or signup_age < 1d"))
    assert timed.time_sensitive
    assert timed.event_types == {"app_opened"}
    assert timed.attributes == {"signup_at"}


# Property filters of campaign triggers.

LISTED = CATALOGUE.event_types["item_listed"]


def test_property_filter_parses_and_matches() -> None:
    """A trigger filter compares the event's own properties."""
    node = parse_property_filter('category in ["books", "comics"] and price >= 1000 and not first_time', LISTED)
    assert matches_properties(node, {"category": "books", "price": 1000, "first_time": False})
    assert not matches_properties(node, {"category": "books", "price": 999, "first_time": False})
    assert matches_properties(node, {"category": "books", "price": 5000})  # a missing first_time is not true
    assert matches_properties(parse_property_filter("not first_time", LISTED), {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("count(item_listed) > 1", "column 1: a property filter compares the event's own properties; no functions"),
        ('region == "kanto"', "column 1: unknown property 'region'"),
        ("cost > 1", "column 1: unknown property 'cost'"),
        ("signup_age < 1d", "unknown property 'signup_age'"),
        ("(", "column 2: expected a condition (a property, not or '('), found end of expression"),
    ],
)
def test_property_filter_errors(text: str, expected: str) -> None:
    """Filters name the trigger's field and refuse functions and user attributes."""
    with pytest.raises(InvalidArgument) as raised:
        parse_property_filter(text, LISTED)
    (violation,) = raised.value.violations
    assert violation.field == "campaign.trigger.event.property_filter"
    assert expected in violation.description


# Properties over random trees.

_EVENT_TYPES = ("item_listed", "payment_captured", "app_opened")
_STRINGS = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('\n\t"\\'), max_size=8)
_INT64 = st.integers(-(2**63), 2**63 - 1)
_SMALL = st.integers(-3, 12000)
_DURATIONS = st.integers(0, 36_500 * 1440).map(lambda minutes: timedelta(minutes=minutes))
_WINDOWS = st.one_of(st.none(), st.integers(1, 365))
_OPS = st.sampled_from(list(Op))


def _terms_and_values(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Node]:
    counts = st.builds(Count, st.sampled_from(_EVENT_TYPES), _WINDOWS)
    sums = st.sampled_from([("item_listed", "price"), ("payment_captured", "amount")]).flatmap(
        lambda pair: st.builds(Sum, st.just(pair[0]), st.just(pair[1]), _WINDOWS)
    )
    numbers = st.one_of(st.just(TIER), counts, sums)
    ages = st.one_of(
        st.builds(Occurrence, st.sampled_from(list(Which)), st.sampled_from(_EVENT_TYPES)),
        st.sampled_from([SIGNUP_AT, Attribute("verified_at", TIME)]),
    ).map(Age)
    return st.one_of(
        st.builds(Compare, st.just(REGION), st.sampled_from([Op.EQ, Op.NE]), _STRINGS),
        st.builds(InList, st.just(REGION), st.lists(_STRINGS, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(Compare, st.just(VIP), st.sampled_from([Op.EQ, Op.NE]), st.booleans()),
        st.builds(Compare, numbers, _OPS, ints),
        st.builds(InList, numbers, st.lists(ints, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(Compare, ages, _OPS, _DURATIONS),
    )


def _trees(leaves: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(Not),
            st.lists(inner, min_size=2, max_size=3).map(all_of),
            st.lists(inner, min_size=2, max_size=3).map(any_of),
        ),
        max_leaves=8,
    )


_REFS = st.sampled_from(["listers", "big-spenders", "kanto-listers"]).map(InSegment)
_CONSTANTS = st.booleans().map(Constant)


@settings(max_examples=200, deadline=None)
@given(_trees(st.one_of(_terms_and_values(_INT64), _REFS, _CONSTANTS)))
def test_render_then_parse_is_the_identity(tree: Node) -> None:
    """Any tree renders to text that parses back to an equal tree."""
    assert p(render(tree)) == tree


def _to_structured(node: Node) -> Condition:
    """The structured form of a tree (constants excepted): the inverse of compile_conditions."""
    if isinstance(node, Not):
        inner = _to_structured(node.operand)
        if inner.negate:
            return c(ConditionGroup(GroupOperator.ALL, (inner,)), negate=True)
        return c(inner.kind, negate=True)
    if isinstance(node, And | Or):
        combine = GroupOperator.ALL if isinstance(node, And) else GroupOperator.ANY
        return c(ConditionGroup(combine, tuple(_to_structured(o) for o in node.operands)))
    if isinstance(node, InSegment):
        return c(SegmentCondition(node.segment_id))
    assert isinstance(node, Compare | InList)
    if isinstance(node, InList):
        operator = Operator.NOT_IN if node.negated else Operator.IN
        values: tuple[Value, ...] = node.values
    else:
        operator, values = Operator(node.op.value), (node.value,)
    term = node.term
    if isinstance(term, Attribute):
        return c(AttributeCondition(term.name, operator, values))
    if isinstance(term, Count | Sum):
        window = None if term.days is None else term.days * DAY
        ints = tuple(int(v) for v in values)  # type: ignore[arg-type]
        if isinstance(term, Count):
            return c(CountCondition(term.event_type, window, operator, ints))
        return c(SumCondition(term.event_type, term.prop, window, operator, ints))
    age = values[0]
    assert isinstance(age, timedelta)
    of = term.of
    if isinstance(of, Attribute):
        return c(AgeCondition(operator, age, attribute=of.name))
    if of.which is Which.FIRST:
        return c(AgeCondition(operator, age, first_event_type=of.event_type))
    return c(AgeCondition(operator, age, last_event_type=of.event_type))


@settings(max_examples=200, deadline=None)
@given(_trees(st.one_of(_terms_and_values(_INT64), _REFS)))
def test_structured_form_of_any_tree_compiles_to_it(tree: Node) -> None:
    """Whatever the expression, its structured equivalent compiles to the same tree."""
    assert compile_conditions(ConditionGroup(GroupOperator.ALL, (_to_structured(tree),)), CATALOGUE) == tree


# Evaluation against an oracle that scans the raw events.


@st.composite
def _histories(draw: st.DrawFn) -> tuple[list[UserEvent], dict[str, object]]:
    events = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(_EVENT_TYPES))
        at = NOW - timedelta(minutes=draw(st.integers(0, 500 * 1440)))
        props: dict[str, str | int | bool] = {}
        if kind == "item_listed":
            props["price"] = draw(st.integers(0, 5000))
        elif kind == "payment_captured":
            props["amount"] = draw(st.integers(0, 5000))
        events.append(UserEvent(f"o{i}", "u1", kind, at, props))
    attributes: dict[str, object] = {}
    for name, values in (
        ("region", st.sampled_from(["", "kanto", "x\n"])),
        ("tier", _SMALL),
        ("vip", st.booleans()),
        ("signup_at", st.integers(0, 900 * 1440).map(lambda m: NOW - timedelta(minutes=m))),
    ):
        if draw(st.booleans()):
            attributes[name] = draw(values)
    return events, attributes


def _oracle(node: Node, events: list[UserEvent], attributes: Mapping[str, object]) -> bool:
    """Membership computed straight from the event list, by the documented rules."""

    def within(at: datetime, days: int | None) -> bool:
        return days is None or 0 <= (NOW.date() - at.date()).days <= days

    def value(term: object) -> object:
        if isinstance(term, Attribute):
            return attributes.get(term.name)
        if isinstance(term, Count):
            return sum(1 for e in events if e.type == term.event_type and within(e.occurred_at, term.days))
        if isinstance(term, Sum):
            return sum(
                int(e.properties.get(term.prop, 0))
                for e in events
                if e.type == term.event_type and within(e.occurred_at, term.days)
            )
        assert isinstance(term, Age)
        of = term.of
        if isinstance(of, Attribute):
            moment = attributes.get(of.name)
        else:
            times = [e.occurred_at for e in events if e.type == of.event_type]
            moment = (min if of.which is Which.FIRST else max)(times, default=None)
        return None if moment is None else NOW - moment  # type: ignore[operator]

    if isinstance(node, And):
        return all(_oracle(o, events, attributes) for o in node.operands)
    if isinstance(node, Or):
        return any(_oracle(o, events, attributes) for o in node.operands)
    if isinstance(node, Not):
        return not _oracle(node.operand, events, attributes)
    if isinstance(node, Constant):
        return node.value
    assert isinstance(node, Compare | InList)
    left = value(node.term)
    if left is None:
        return False
    if isinstance(node, InList):
        return (left in node.values) != node.negated
    ops = {
        Op.EQ: lambda a, b: a == b,
        Op.NE: lambda a, b: a != b,
        Op.LT: lambda a, b: a < b,
        Op.LE: lambda a, b: a <= b,
        Op.GT: lambda a, b: a > b,
        Op.GE: lambda a, b: a >= b,
    }
    return bool(ops[node.op](left, node.value))


@settings(max_examples=150, deadline=None)
@given(tree=_trees(st.one_of(_terms_and_values(_SMALL), _CONSTANTS)), history=_histories())
def test_evaluation_agrees_with_a_scan_of_the_events(
    tree: Node, history: tuple[list[UserEvent], dict[str, object]]
) -> None:
    """On random histories, evaluating on incremental facts equals the oracle on raw events."""
    events, attributes = history
    user = UserFacts("u1")
    for e in events:
        facts.apply(user, e, CATALOGUE)
    for name, value in attributes.items():
        facts.set_attribute(user, name, value, NOW)  # type: ignore[arg-type]
    assert evaluate(tree, user, NOW) == _oracle(tree, events, attributes)
