"""The segment language's recursive-descent parser: tokens (`segments_tokens`) in, a
`segments_ast` tree out.

The grammar (EBNF; docs/marketing.md has it with examples and the types)::

    expression = or ;
    or         = and { "or" and } ;
    and        = unary { "and" unary } ;
    unary      = "not" unary | primary ;
    primary    = "(" or ")" | "true" | "false"
               | "in_segment" "(" STRING ")"
               | time "within" DURATION
               | value ( compare_op literal | [ "not" ] "in" list )
               | bool_attribute ;
    value      = attribute | "signup_age" | "count" "(" NAME [ "," DURATION ] ")"
               | "sum" "(" NAME "." NAME [ "," DURATION ] ")" | time "ago" ;
    time       = ( "first" | "last" ) "(" NAME ")" | time_attribute ;
    list       = "[" literal { "," literal } "]" ;
    literal    = STRING | INT | DURATION | "true" | "false" ;

A syntax error stops the parse (one violation); problems of meaning (an unknown event
type, a window too long, a value of the wrong type) are collected and the parse goes on,
so an author sees all of them at once. Every message starts with the 1-based column.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

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
    render_term,
    segment_id_problem,
    summed_problem,
    window_problem,
)
from services.marketing.domain.segments_tokens import KEYWORDS, Kind, SyntaxProblem, Token, tokenize

MAX_LENGTH = 4096
MAX_DEPTH = 32
"""Nested parentheses and ``not``s: deep enough for people, shallow enough for the stack."""

FUNCTIONS = ("count", "sum", "first", "last", "in_segment")


class _Parser:
    """Parses one expression. ``attributes`` are the names a bare word may be (a user's
    attributes, or an event's properties in a property filter); ``catalogue`` is None in
    a property filter, where functions are not available.
    """

    def __init__(self, text: str, attributes: Mapping[str, ValueType], catalogue: Catalogue | None, field: str) -> None:
        self.tokens = tokenize(text)
        self.position = 0
        self.attributes = attributes
        self.catalogue = catalogue
        self.field = field
        self.depth = 0
        self.problems: list[tuple[int, str]] = []

    # Token plumbing.

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def at_word(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind is Kind.WORD and token.text == word

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind is Kind.PUNCT and token.text == char

    def expect_punct(self, char: str, after: str) -> Token:
        if not self.at_punct(char):
            raise self.error(f"expected {char!r} {after}")
        return self.advance()

    def error(self, expected: str, token: Token | None = None) -> SyntaxProblem:
        """A syntax error at ``token`` (the next one by default): what was expected, what was found."""
        found = token or self.peek()
        hint = ""
        if found.kind is Kind.WORD and found.text.lower() in KEYWORDS and found.text not in KEYWORDS:
            hint = f" (keywords are lowercase: {found.text.lower()!r})"
        return SyntaxProblem(found.column, f"{expected}, found {found.shown()}{hint}")

    def problem(self, column: int, message: str | None) -> None:
        if message is not None:
            self.problems.append((column, message))

    # Grammar.

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek().kind is not Kind.END:
            raise self.error("expected 'and', 'or' or the end of the expression")
        return node

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.at_word("or"):
            self.advance()
            operands.append(self.parse_and())
        return any_of(operands)

    def parse_and(self) -> Node:
        operands = [self.parse_unary()]
        while self.at_word("and"):
            self.advance()
            operands.append(self.parse_unary())
        return all_of(operands)

    def parse_unary(self) -> Node:
        if not self.at_word("not"):
            return self.parse_primary()
        token = self.advance()
        with self.nested(token):
            return Not(self.parse_unary())

    def nested(self, token: Token) -> _Nesting:
        return _Nesting(self, token)

    def parse_primary(self) -> Node:
        token = self.peek()
        if self.at_punct("("):
            self.advance()
            with self.nested(token):
                node = self.parse_or()
            if not self.at_punct(")"):
                raise self.error(f"expected 'and', 'or' or ')' to close the '(' at column {token.column}")
            self.advance()
            return node
        if token.kind is Kind.WORD and token.text in ("true", "false"):
            self.advance()
            return Constant(token.text == "true")
        if token.kind is not Kind.WORD or token.text in KEYWORDS:
            raise self.error(self.expected_condition())
        if self.peek(1).kind is Kind.PUNCT and self.peek(1).text == "(":
            return self.parse_call()
        return self.parse_attribute()

    def expected_condition(self) -> str:
        if self.catalogue is None:
            return "expected a condition (a property, not or '(')"
        return (
            "expected a condition (an attribute, count(...), sum(...), first(...), last(...), in_segment(...), "
            "not or '(')"
        )

    def parse_attribute(self) -> Node:
        token = self.advance()
        name = token.text
        if name == SIGNUP_AGE and self.catalogue is not None and "signup_at" in self.attributes:
            return self.parse_comparison(Age(Attribute("signup_at", ValueType.TIME)))
        kind = self.attributes.get(name)
        if kind is None:
            what = "attribute" if self.catalogue is not None else "property"
            known = [*self.attributes, SIGNUP_AGE] if self.catalogue is not None else list(self.attributes)
            self.problem(token.column, f"unknown {what} {name!r}" + suggestion(name, tuple(known)))
            return self.skip_comparison()
        attribute = Attribute(name, kind)
        if kind is ValueType.TIME:
            return self.parse_time(attribute)
        if kind is ValueType.BOOL and not self.at_comparison():
            return Compare(attribute, Op.EQ, True)
        return self.parse_comparison(attribute)

    def parse_call(self) -> Node:
        token = self.advance()
        name = token.text
        if self.catalogue is None:
            raise SyntaxProblem(token.column, "a property filter compares the event's own properties; no functions")
        if name not in FUNCTIONS:
            hint = suggestion(name, FUNCTIONS)
            raise SyntaxProblem(token.column, f"unknown function {name!r}{hint} (functions: {', '.join(FUNCTIONS)})")
        self.advance()  # "("
        if name == "in_segment":
            argument = self.peek()
            if argument.kind is not Kind.STRING:
                raise self.error('expected a segment id in double quotes, as in in_segment("churned")')
            self.advance()
            assert isinstance(argument.value, str)
            self.problem(argument.column, segment_id_problem(argument.value))
            self.expect_punct(")", "after the segment id")
            return InSegment(argument.value, Location(self.field, token.column))
        event_type = self.event_type_argument()
        if name in ("first", "last"):
            self.expect_punct(")", f"after the event type ({name}() takes no window)")
            return self.parse_time(Occurrence(Which(name), event_type))
        prop = None
        if name == "sum":
            self.expect_punct(".", "and a summed property after the event type, as in sum(payment_captured.amount)")
            prop_token = self.peek()
            if prop_token.kind is not Kind.WORD:
                raise self.error("expected a property name")
            self.advance()
            prop = prop_token.text
            if event_type_problem(self.catalogue, event_type) is None:
                self.problem(prop_token.column, summed_problem(self.catalogue, event_type, prop))
        days = self.window_argument()
        self.expect_punct(")", "to close the call")
        term: Term = Count(event_type, days) if prop is None else Sum(event_type, prop, days)
        return self.parse_comparison(term)

    def event_type_argument(self) -> str:
        token = self.peek()
        if token.kind is Kind.STRING:
            raise self.error("expected an event type name (without quotes)")
        if token.kind is not Kind.WORD:
            raise self.error("expected an event type name")
        self.advance()
        assert self.catalogue is not None
        self.problem(token.column, event_type_problem(self.catalogue, token.text))
        return token.text

    def window_argument(self) -> int | None:
        if not self.at_punct(","):
            return None
        self.advance()
        token = self.peek()
        if token.kind is not Kind.DURATION:
            raise self.error("expected a window such as 30d")
        self.advance()
        assert isinstance(token.value, timedelta)
        problem = window_problem(token.value)
        self.problem(token.column, problem)
        return None if problem else token.value.days

    def parse_time(self, of: Attribute | Occurrence) -> Node:
        age = Age(of)
        if self.at_word("within"):
            self.advance()
            limit = self.peek()
            if limit.kind is not Kind.DURATION:
                raise self.error("expected a duration such as 7d after 'within'")
            self.advance()
            assert isinstance(limit.value, timedelta)
            self.problem(limit.column, duration_problem(limit.value))
            return Compare(age, Op.LE, limit.value)
        if self.at_word("ago"):
            self.advance()
            return self.parse_comparison(age)
        shown = f"{of.which.value}({of.event_type})" if isinstance(of, Occurrence) else of.name
        raise self.error(f"{shown} is a time: expected 'within' and a duration, or 'ago' and a comparison")

    def at_comparison(self) -> bool:
        token = self.peek()
        return token.kind is Kind.OPERATOR or self.at_word("in") or (self.at_word("not") and self.at_word("in", 1))

    def parse_comparison(self, term: Term) -> Node:
        token = self.peek()
        if token.kind is Kind.OPERATOR:
            self.advance()
            assert isinstance(token.value, Op)
            self.problem(token.column, operator_problem(term, token.value))
            value, column = self.parse_literal()
            self.problem(column, literal_problem(term, value))
            return Compare(term, token.value, value)
        negated = self.at_word("not") and self.at_word("in", 1)
        if negated:
            self.advance()
        if self.at_word("in"):
            in_token = self.advance()
            self.problem(in_token.column, operator_problem(term, None, in_list=True))
            values = self.parse_list(term)
            return InList(term, values, negated)
        expected = f"expected a comparison (==, !=, <, <=, >, >=, in or not in) after {render_term(term)}"
        if self.at_word("within"):
            expected += " ('within' follows first(...), last(...) or a time attribute)"
        raise self.error(expected)

    def skip_comparison(self) -> Node:
        """Parse and drop what follows an unknown name, to find the problems after it."""
        if self.at_word("within"):
            self.advance()
            self.parse_literal()
            return Constant(False)
        if self.at_word("ago"):
            self.advance()
        if self.peek().kind is Kind.OPERATOR:
            self.advance()
            self.parse_literal()
        elif self.at_comparison():
            while not self.at_word("in"):
                self.advance()  # "not"
            self.advance()
            self.parse_list(None)
        return Constant(False)

    def parse_literal(self) -> tuple[Value, int]:
        token = self.peek()
        if token.kind in (Kind.STRING, Kind.INT, Kind.DURATION):
            self.advance()
            assert isinstance(token.value, str | int | timedelta)
            return token.value, token.column
        if token.kind is Kind.WORD and token.text in ("true", "false"):
            self.advance()
            return token.text == "true", token.column
        raise self.error(
            "expected a value (a string in double quotes, a whole number, a duration such as 7d, true or false)"
        )

    def parse_list(self, term: Term | None) -> tuple[Value, ...]:
        opening = self.expect_punct("[", "to start the list of values")
        if self.at_punct("]"):
            raise self.error("expected at least one value in the list")
        values: list[Value] = []
        while True:
            value, column = self.parse_literal()
            if term is not None:
                self.problem(column, literal_problem(term, value))
            values.append(value)
            if self.at_punct("]"):
                self.advance()
                break
            self.expect_punct(",", "or ']' in the list")
        if len(values) > MAX_LIST_LENGTH:
            self.problem(opening.column, f"a list has at most {MAX_LIST_LENGTH} values")
        return tuple(values)


class _Nesting:
    """Counts nesting depth around a parenthesis or a ``not``, refusing pathological depth."""

    def __init__(self, parser: _Parser, token: Token) -> None:
        self.parser = parser
        self.token = token

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_DEPTH:
            raise SyntaxProblem(self.token.column, f"nested more than {MAX_DEPTH} deep")

    def __exit__(self, *_: object) -> None:
        self.parser.depth -= 1


def parse(text: str, attributes: Mapping[str, ValueType], catalogue: Catalogue | None, field: str) -> Node:
    """Parse ``text``; `InvalidArgument` with every problem on ``field``, each with its column."""
    if not text.strip():
        raise InvalidArgument("the expression is empty", [FieldViolation(field, "is required")])
    if len(text) > MAX_LENGTH:
        raise InvalidArgument("the expression is too long", [FieldViolation(field, f"at most {MAX_LENGTH} characters")])
    problems: list[tuple[int, str]] = []
    node: Node | None = None
    try:
        parser = _Parser(text, attributes, catalogue, field)
        try:
            node = parser.parse()
        finally:
            problems.extend(parser.problems)
    except SyntaxProblem as stopped:
        problems.append((stopped.column, stopped.message))
    if problems or node is None:
        ordered = sorted(problems, key=lambda problem: problem[0])
        violations = [FieldViolation(field, f"column {column}: {message}") for column, message in ordered]
        raise InvalidArgument(f"the expression has {len(violations)} problem(s)", violations)
    return node
