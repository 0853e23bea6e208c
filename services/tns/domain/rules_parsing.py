"""Reading a rule file: TOML in, checked and compiled rules out.

Every problem is collected, with the path of the offending value
(``rules[3].when.all[1].keywords``), and raised at once as `InvalidArgument`, so an author
fixes a file in one pass rather than one error per attempt.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from libs.errors import FieldViolation, InvalidArgument
from services.tns.domain.content import POLICIES, VELOCITY_COUNT_LIMIT, ContentKind, Verdict
from services.tns.domain.detectors import DETECTORS, check_term
from services.tns.domain.rules_conditions import (
    AllOf,
    AnyOf,
    AuthorIs,
    CategoryIn,
    Condition,
    Detected,
    Keywords,
    ModelFlags,
    NotOf,
    PatternFound,
    PriceBelow,
    Rule,
    VelocityAbove,
    lists_required,
)
from services.tns.domain.text import fold_kana

_TOP_KEYS = ("version", "description", "allowed_domains", "lists", "patterns", "reference_prices", "rules")
_RULE_KEYS = ("id", "policy", "verdict", "applies_to", "shadow", "description", "when")
_CONDITIONS: tuple[str, ...] = ("all", "any", "not", "keywords", "detector", "model", "price_below_ratio")
_CONDITIONS += ("velocity", "author", "category_in", "pattern")
_MODIFIERS = {"min_count": "detector", "min_score": "model"}  # modifier → the condition it refines
_AUTHOR_KEYS = ("restricted", "max_account_age_days", "min_account_age_days", "label", "min_strike_points")
_VELOCITY_KEYS = ("kind", "window", "more_than")
_VERDICTS = tuple(verdict.name for verdict in Verdict)
_KINDS = tuple(kind.value for kind in ContentKind)

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_WINDOW = re.compile(r"([1-9][0-9]*)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_WINDOW = 30 * 86400  # counters older than this are not kept by any store
_MAX_DEPTH = 16


@dataclass(frozen=True)
class ParsedRules:
    """A valid rule file, compiled."""

    version: str
    description: str
    lists: dict[str, tuple[str, ...]]
    allowed_domains: frozenset[str]
    rules: tuple[Rule, ...]
    velocity_windows: frozenset[tuple[ContentKind, int]]
    velocity_limits: Mapping[tuple[ContentKind, int], int]


# TOML booleans are Python bools, which are ints: never take `true` for 1.
def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _one_of(values: Sequence[str]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def _unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else f" (expected {_one_of(known)})")


def _has_upper_case_letter(pattern: str) -> bool:
    r"""Whether ``pattern`` has an upper-case letter that is not an escape (``\S``, ``\W``)."""
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isupper():
            return True
    return False


def parse_window(text: str) -> int | None:
    """Seconds in a window such as ``"10m"``, ``"1h"``, ``"7d"``; None when malformed."""
    found = _WINDOW.fullmatch(text)
    return None if found is None else int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


class _Checker:
    """Walks a decoded document, compiling what is valid and recording what is not."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []
        self.lists: dict[str, tuple[str, ...]] = {}
        self.patterns: dict[str, re.Pattern[str] | None] = {}  # None: invalid, reported already
        self.prices: dict[str, int] = {}
        self.windows: set[tuple[ContentKind, int]] = set()
        # Per window, how far the counts must go for every rule to decide: max(more_than) + 1.
        self.limits: dict[tuple[ContentKind, int], int] = {}

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def keys(self, table: Mapping[str, object], path: str, known: Sequence[str]) -> None:
        for key in table:
            if key not in known:
                self.add(f"{path}.{key}" if path else key, _unknown_key(key, known))

    def name_table(self, document: Mapping[str, object], key: str) -> dict[str, object]:
        """The table ``key`` of the document ({} when absent), its keys checked as names."""
        value = document.get(key, {})
        if not isinstance(value, dict):
            self.add(key, "must be a table")
            return {}
        for name in value:
            if key != "reference_prices" and not _NAME.fullmatch(name):
                self.add(f"{key}.{name}", "a name is lowercase letters, digits and underscores, starting with a letter")
        return value

    def document(self, document: Mapping[str, object]) -> ParsedRules | None:
        self.keys(document, "", _TOP_KEYS)
        version = document.get("version")
        if version is None:
            self.add("version", "is required")
        elif not isinstance(version, str) or not version.strip():
            self.add("version", "must be a non-empty string")
        description = document.get("description", "")
        if not isinstance(description, str):
            self.add("description", "must be a string")
        raw_domains = document.get("allowed_domains", [])
        domains = self.string_list(raw_domains, "allowed_domains", allow_empty=True)
        for i, domain in enumerate(raw_domains if isinstance(raw_domains, list) else []):
            if isinstance(domain, str) and domain.strip() and not _DOMAIN.fullmatch(domain):
                self.add(f"allowed_domains[{i}]", f"{domain!r} is not a lowercase domain name")
        for name, terms in self.name_table(document, "lists").items():
            self.keyword_list(name, terms)
        for name, source in self.name_table(document, "patterns").items():
            self.pattern(name, source)
        for category, price in self.name_table(document, "reference_prices").items():
            yen = _whole(price)
            if yen is not None and yen > 0:
                self.prices[category.casefold()] = yen  # categories match whatever their case
            else:
                self.add(f"reference_prices.{category}", "must be a positive whole number of yen")
        rules = self.rules(document.get("rules"))
        if self.violations:
            return None
        if not isinstance(version, str) or not isinstance(description, str):
            return None  # unreachable: both were checked above; this narrows their types
        return ParsedRules(
            version,
            description,
            self.lists,
            frozenset(domains),
            tuple(rules),
            frozenset(self.windows),
            dict(self.limits),
        )

    def string_list(self, value: object, path: str, *, allow_empty: bool = False) -> list[str]:
        if not isinstance(value, list) or (not value and not allow_empty):
            self.add(path, "must be an array of strings" if allow_empty else "must be a non-empty array of strings")
            return []
        strings: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                strings.append(item)
            else:
                self.add(f"{path}[{i}]", "must be a non-empty string")
        return strings

    def keyword_list(self, name: str, terms: object) -> None:
        path = f"lists.{name}"
        strings = self.string_list(terms, path)
        for i, term in enumerate(terms if isinstance(terms, list) else []):
            problem = check_term(term) if isinstance(term, str) and term.strip() else None
            if problem is not None:
                self.add(f"{path}[{i}]", f"term {term!r}: {problem}")
        # Known even when invalid, so the rules using it are not reported a second time.
        self.lists[name] = tuple(strings)

    def pattern(self, name: str, source: object) -> None:
        path = f"patterns.{name}"
        self.patterns[name] = None
        if not isinstance(source, str) or not source:
            self.add(path, "must be a non-empty string (a regular expression)")
            return
        # The text is casefolded, so an upper-case letter could never match. (Not
        # re.IGNORECASE: it disables the engine's fast scan for a pattern's first
        # characters, and costs several microseconds per pattern on every text.)
        if _has_upper_case_letter(source):
            self.add(path, "write letters in lower case: patterns match the casefolded text")
            return
        try:
            # Written as people write Japanese; matched against folded text (hiragana).
            self.patterns[name] = re.compile(fold_kana(source))
        except re.error as error:
            self.add(path, f"invalid regular expression: {error}")

    def rules(self, value: object) -> list[Rule]:
        if value is None:
            self.add("rules", "is required: at least one [[rules]] table")
            return []
        if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
            self.add("rules", "must be a non-empty array of tables ([[rules]])")
            return []
        rules: list[Rule] = []
        first_index: dict[str, int] = {}
        for i, table in enumerate(value):
            path = f"rules[{i}]"
            rule_id = table.get("id")
            if isinstance(rule_id, str) and rule_id in first_index:
                self.add(f"{path}.id", f"duplicate rule id {rule_id!r} (also rules[{first_index[rule_id]}])")
            elif isinstance(rule_id, str):
                first_index[rule_id] = i
            rule = self.rule(table, path)
            if rule is not None:
                rules.append(rule)
        return rules

    def rule(self, table: Mapping[str, object], path: str) -> Rule | None:
        before = len(self.violations)
        self.keys(table, path, _RULE_KEYS)
        rule_id = self.required_string(table, path, "id")
        if rule_id is not None and not _RULE_ID.fullmatch(rule_id):
            self.add(f"{path}.id", "an id is dotted lowercase names, such as 'offplatform.bank_account'")
        policy = self.required_string(table, path, "policy")
        if policy is not None and policy not in POLICIES:
            self.add(f"{path}.policy", f"unknown policy {policy!r} (expected {_one_of(POLICIES)})")
        verdict = self.required_string(table, path, "verdict")
        if verdict is not None and verdict not in _VERDICTS:
            self.add(f"{path}.verdict", f"unknown verdict {verdict!r} (expected {_one_of(_VERDICTS)})")
        kinds = self.kinds(table.get("applies_to", list(_KINDS)), f"{path}.applies_to")
        shadow = table.get("shadow", False)
        if not isinstance(shadow, bool):
            self.add(f"{path}.shadow", "must be true or false")
        description = self.required_string(table, path, "description")
        when = table.get("when")
        condition = None if when is None else self.condition(when, f"{path}.when", 0)
        if when is None:
            self.add(f"{path}.when", "is required")
        if len(self.violations) > before or not (rule_id and policy and verdict and description and condition):
            return None
        needs = lists_required(condition)
        return Rule(rule_id, policy, Verdict[verdict], kinds, bool(shadow), description, condition, needs)

    def required_string(self, table: Mapping[str, object], path: str, key: str) -> str | None:
        value = table.get(key)
        if value is None:
            self.add(f"{path}.{key}", "is required")
        elif not isinstance(value, str) or not value.strip():
            self.add(f"{path}.{key}", "must be a non-empty string")
        else:
            return value
        return None

    def kinds(self, value: object, path: str) -> frozenset[ContentKind]:
        kinds: set[ContentKind] = set()
        for i, name in enumerate(self.string_list(value, path)):
            if name in _KINDS:
                kinds.add(ContentKind(name))
            else:
                self.add(f"{path}[{i}]", f"unknown content kind {name!r} (expected {_one_of(_KINDS)})")
        return frozenset(kinds)

    def condition(self, value: object, path: str, depth: int) -> Condition | None:
        if not isinstance(value, dict):
            self.add(path, "must be a table holding one condition")
            return None
        if depth >= _MAX_DEPTH:
            self.add(path, f"conditions nest more than {_MAX_DEPTH} deep")
            return None
        known = _CONDITIONS + tuple(_MODIFIERS)
        self.keys(value, path, known)
        present = [key for key in value if key in _CONDITIONS]
        if len(present) != 1:
            if not present and all(key in known for key in value):
                self.add(path, f"empty condition: expected one of {_one_of(_CONDITIONS)}")
            elif present:
                found = ", ".join(present)
                self.add(path, f"one condition per table, found {found}: combine them with 'all' or 'any'")
            return None
        key = present[0]
        for modifier, owner in _MODIFIERS.items():
            if modifier in value and owner != key:
                self.add(f"{path}.{modifier}", f"{modifier!r} refines {owner!r} conditions only")
        if any(k not in known for k in value):
            return None
        return self.leaf(key, value, f"{path}.{key}", depth)

    def leaf(self, key: str, table: Mapping[str, object], path: str, depth: int) -> Condition | None:
        value = table[key]
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.add(path, "must be a non-empty array of conditions")
                return None
            children = [self.condition(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value)]
            if any(child is None for child in children):
                return None
            # Cheap conditions first: an "all" stops at its first failing child.
            ordered = tuple(sorted((c for c in children if c is not None), key=lambda c: c.cost))
            return AllOf(ordered) if key == "all" else AnyOf(ordered)
        if key == "not":
            child = self.condition(value, path, depth + 1)
            return None if child is None else NotOf(child)
        if key == "keywords":
            if not isinstance(value, str) or value not in self.lists:
                self.add(path, f"unknown keyword list {value!r}")
                return None
            return Keywords(value)
        if key == "pattern":
            if not isinstance(value, str) or value not in self.patterns:
                self.add(path, f"unknown pattern {value!r}")
                return None
            regex = self.patterns[value]
            return None if regex is None else PatternFound(value, regex)
        if key == "detector":
            return self.detector(value, table.get("min_count", 1), path)
        if key == "model":
            return self.model(value, table.get("min_score"), path)
        if key == "price_below_ratio":
            return self.price_below(value, path)
        if key == "velocity":
            return self.velocity(value, path)
        if key == "author":
            return self.author(value, path)
        categories = self.string_list(value, path)
        return CategoryIn(tuple(category.casefold() for category in categories)) if categories else None

    def detector(self, name: object, min_count: object, path: str) -> Condition | None:
        count = _whole(min_count)
        if count is None or count < 1:
            self.add(path.rpartition(".")[0] + ".min_count", "must be a whole number, 1 or more")
        if not isinstance(name, str) or name not in DETECTORS:
            self.add(path, f"unknown detector {name!r} (expected {_one_of(DETECTORS)})")
            return None
        return Detected(name, count) if count is not None and count >= 1 else None

    def model(self, policy: object, min_score: object, path: str) -> Condition | None:
        score = _number(min_score)
        bad_score = min_score is not None and (score is None or not 0 <= score <= 1)
        if bad_score:
            self.add(path.rpartition(".")[0] + ".min_score", "must be a number from 0 to 1")
        if not isinstance(policy, str) or policy not in POLICIES:
            self.add(path, f"unknown policy {policy!r} (expected {_one_of(POLICIES)})")
            return None
        return None if bad_score else ModelFlags(policy, score)

    def price_below(self, value: object, path: str) -> Condition | None:
        ratio = _number(value)
        if ratio is None or not 0 < ratio <= 1:
            self.add(path, "must be a number above 0 and at most 1")
            return None
        if not self.prices:
            self.add(path, "no reference_prices to compare with")
            return None
        return PriceBelow(ratio, dict(self.prices))

    def velocity(self, table: object, path: str) -> Condition | None:
        if not isinstance(table, dict):
            self.add(path, "must be a table: { kind = ..., window = ..., more_than = ... }")
            return None
        before = len(self.violations)
        self.keys(table, path, _VELOCITY_KEYS)
        for key in _VELOCITY_KEYS:
            if key not in table:
                self.add(f"{path}.{key}", "is required")
        kind, window, more_than = table.get("kind"), table.get("window"), _whole(table.get("more_than"))
        if "kind" in table and kind not in _KINDS:
            self.add(f"{path}.kind", f"unknown content kind {kind!r} (expected {_one_of(_KINDS)})")
        seconds = parse_window(window) if isinstance(window, str) else None
        if "window" in table and (seconds is None or seconds > _MAX_WINDOW):
            self.add(f"{path}.window", f"bad window {window!r}: a whole number and s, m, h or d, at most 30d")
        if "more_than" in table and (more_than is None or not 0 <= more_than < VELOCITY_COUNT_LIMIT):
            # Counts saturate at the limit (a prolific author must not slow every decision).
            self.add(f"{path}.more_than", f"must be a whole number from 0 to {VELOCITY_COUNT_LIMIT - 1}")
        valid = len(self.violations) == before
        if not (valid and isinstance(kind, str) and isinstance(window, str) and seconds and more_than is not None):
            return None
        window_key = (ContentKind(kind), seconds)
        self.windows.add(window_key)
        self.limits[window_key] = max(self.limits.get(window_key, 0), more_than + 1)
        return VelocityAbove(ContentKind(kind), seconds, window, more_than)

    def author(self, table: object, path: str) -> Condition | None:
        if not isinstance(table, dict) or not table:
            self.add(path, f"must be a table with at least one of {_one_of(_AUTHOR_KEYS)}")
            return None
        before = len(self.violations)
        self.keys(table, path, _AUTHOR_KEYS)
        restricted, label = table.get("restricted"), table.get("label")
        if restricted is not None and not isinstance(restricted, bool):
            self.add(f"{path}.restricted", "must be true or false")
        if label is not None and (not isinstance(label, str) or not label):
            self.add(f"{path}.label", "must be a non-empty string")
        numbers: dict[str, float | None] = {}
        for key in ("max_account_age_days", "min_account_age_days", "min_strike_points"):
            numbers[key] = number = _number(table.get(key))
            if key in table and (number is None or number < 0):
                self.add(f"{path}.{key}", "must be a number, 0 or more")
        if len(self.violations) > before:
            return None
        return AuthorIs(
            restricted if isinstance(restricted, bool) else None,
            numbers["max_account_age_days"],
            numbers["min_account_age_days"],
            label if isinstance(label, str) else None,
            numbers["min_strike_points"],
        )


def parse_document(text: str, source: str) -> ParsedRules:
    """Decode and check a rule file; raise `InvalidArgument` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidArgument(f"{source} is not valid TOML", [FieldViolation(source, str(error))]) from None
    checker = _Checker()
    parsed = checker.document(document)
    if parsed is None:
        count = len(checker.violations)
        raise InvalidArgument(f"{source} has {count} problem{'s' if count > 1 else ''}", checker.violations)
    return parsed
