"""The conditions of a rule, compiled from its ``when`` table, and what one evaluation knows.

A condition's `test` returns None when it does not hold, and the evidence (possibly
empty) when it does. `Scope` computes each expensive fact of an evaluation (the
normalized text, the keyword lists found, each detector's matches) at most once, on first
use, so rules that share a detector share its cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from services.tns.domain.content import AuthorContext, Content, ContentKind, Verdict
from services.tns.domain.detectors import Detector, KeywordIndex, Match
from services.tns.domain.text import NormalizedText

Evidence = tuple[str, ...]

_MAX_EVIDENCE = 5  # per condition: enough for a reviewer, bounded for storage


class Scope:
    """The facts one evaluation draws on; each is computed at most once."""

    __slots__ = ("_detected", "_found", "author", "content", "detectors", "keywords", "scores", "text", "thresholds")

    def __init__(
        self,
        content: Content,
        author: AuthorContext,
        scores: Mapping[str, float],
        thresholds: Mapping[str, float],
        keywords: KeywordIndex,
        detectors: Mapping[str, Detector],
    ) -> None:
        self.content = content
        self.author = author
        self.scores = scores
        self.thresholds = thresholds
        self.keywords = keywords
        self.detectors = detectors
        self.text = NormalizedText(content.text)
        self._found: dict[str, tuple[str, ...]] | None = None
        self._detected: dict[str, tuple[Match, ...]] = {}

    def lists_found(self) -> dict[str, tuple[str, ...]]:
        """Keyword list name → its terms found in the text (every list is matched in one pass)."""
        if self._found is None:
            self._found = self.keywords.find(self.text)
        return self._found

    def terms_found(self, list_name: str) -> tuple[str, ...]:
        """The terms of keyword list ``list_name`` found in the text."""
        return self.lists_found().get(list_name, ())

    def detected(self, detector: str) -> tuple[Match, ...]:
        """What detector ``detector`` finds in the text."""
        matches = self._detected.get(detector)
        if matches is None:
            matches = self._detected[detector] = self.detectors[detector](self.text)
        return matches


class Condition(Protocol):
    """Part of a rule's ``when``: holds or not for one piece of content."""

    @property
    def cost(self) -> int:
        """How expensive `test` is, relative to other conditions (0: a lookup)."""
        ...

    def test(self, scope: Scope) -> Evidence | None:
        """None when the condition does not hold; otherwise why it does."""
        ...


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every child holds; children run cheapest first, and stop at the first that fails."""

    children: tuple[Condition, ...]

    @property
    def cost(self) -> int:
        """The most expensive child's cost."""
        return max(child.cost for child in self.children)

    def test(self, scope: Scope) -> Evidence | None:
        """The evidence of every child, or None when one fails."""
        evidence: list[str] = []
        for child in self.children:
            found = child.test(scope)
            if found is None:
                return None
            evidence.extend(found)
        return tuple(evidence)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one child holds; children run cheapest first, and stop at the first that holds."""

    children: tuple[Condition, ...]

    @property
    def cost(self) -> int:
        """The most expensive child's cost."""
        return max(child.cost for child in self.children)

    def test(self, scope: Scope) -> Evidence | None:
        """The evidence of the first child that holds."""
        for child in self.children:
            found = child.test(scope)
            if found is not None:
                return found
        return None


@dataclass(frozen=True, slots=True)
class NotOf:
    """The child does not hold."""

    child: Condition

    @property
    def cost(self) -> int:
        """The child's cost."""
        return self.child.cost

    def test(self, scope: Scope) -> Evidence | None:
        """No evidence: the absence of something is its own explanation."""
        return () if self.child.test(scope) is None else None


@dataclass(frozen=True, slots=True)
class Keywords:
    """A term of a keyword list appears in the text."""

    list_name: str
    cost: ClassVar[int] = 1

    def test(self, scope: Scope) -> Evidence | None:
        """The terms found, as written in the list."""
        terms = scope.terms_found(self.list_name)
        if not terms:
            return None
        return (f"{self.list_name}: " + ", ".join(f'"{term}"' for term in terms[:_MAX_EVIDENCE]),)


@dataclass(frozen=True, slots=True)
class Detected:
    """A detector finds at least ``min_count`` things."""

    detector: str
    min_count: int = 1
    cost: ClassVar[int] = 3

    def test(self, scope: Scope) -> Evidence | None:
        """The detector's (masked) evidence."""
        matches = scope.detected(self.detector)
        if len(matches) < self.min_count:
            return None
        return tuple(dict.fromkeys(match.evidence for match in matches))[:_MAX_EVIDENCE]


@dataclass(frozen=True, slots=True)
class PatternFound:
    """A named regular expression of the rule file matches the ``plain`` view."""

    name: str
    regex: re.Pattern[str]
    cost: ClassVar[int] = 2

    def test(self, scope: Scope) -> Evidence | None:
        """The pattern's name and the matched text (patterns never target personal data)."""
        found = self.regex.search(scope.text.plain)
        return None if found is None else (f'pattern {self.name}: "{found.group()[:40]}"',)


@dataclass(frozen=True, slots=True)
class ModelFlags:
    """The classifier's score for a policy reaches ``min_score``, or the model's threshold."""

    policy: str
    min_score: float | None = None
    cost: ClassVar[int] = 0

    def test(self, scope: Scope) -> Evidence | None:
        """The score and the bar it reached; None when there is no score (no model)."""
        score = scope.scores.get(self.policy)
        bar = self.min_score if self.min_score is not None else scope.thresholds.get(self.policy)
        if score is None or bar is None or score < bar:
            return None
        return (f"model {self.policy} {score:.2f} >= {bar:.2f}",)


def reference_category(category: str, prices: Mapping[str, int]) -> str | None:
    """The most specific category of ``prices`` that is ``category`` or one of its ancestors
    (``"bags/brand/chanel"`` falls back to ``"bags/brand"``, then ``"bags"``). Both sides
    are casefolded by the caller.
    """
    while category:
        if category in prices:
            return category
        category = category.rpartition("/")[0]
    return None


@dataclass(frozen=True, slots=True)
class PriceBelow:
    """A listing's price is under ``ratio`` times its category's reference price (JPY)."""

    ratio: float
    prices: Mapping[str, int]
    cost: ClassVar[int] = 0

    def test(self, scope: Scope) -> Evidence | None:
        """The price and the reference; None without a price or a known category."""
        content = scope.content
        if content.kind is not ContentKind.LISTING or content.price is None or content.currency != "JPY":
            return None
        category = reference_category(content.category.casefold(), self.prices)
        if category is None:
            return None
        reference = self.prices[category]
        if content.price >= self.ratio * reference:
            return None
        return (f"price {content.price} JPY < {self.ratio:g} x {reference} JPY ({category})",)


@dataclass(frozen=True, slots=True)
class CategoryIn:
    """The content's category is one of ``categories``, or below one (``"food/snacks"`` is
    in ``"food"``), ignoring case; ``categories`` are casefolded.
    """

    categories: tuple[str, ...]
    below: tuple[str, ...] = field(init=False, repr=False, compare=False)
    cost: ClassVar[int] = 0

    def __post_init__(self) -> None:
        # "food/" once, not on every test: this runs for every listing.
        object.__setattr__(self, "below", tuple(wanted + "/" for wanted in self.categories))

    def test(self, scope: Scope) -> Evidence | None:
        """The category."""
        category = scope.content.category.casefold()
        if category in self.categories or category.startswith(self.below):
            return (f"category {scope.content.category}",)
        return None


@dataclass(frozen=True, slots=True)
class VelocityAbove:
    """The author submitted more than ``more_than`` items of ``kind`` within the window."""

    kind: ContentKind
    seconds: int
    window: str
    more_than: int
    cost: ClassVar[int] = 0

    def test(self, scope: Scope) -> Evidence | None:
        """The count; None when the caller did not supply it."""
        count = scope.author.recent.get((self.kind, self.seconds))
        if count is None or count <= self.more_than:
            return None
        return (f"{count} {self.kind.value}s in {self.window} > {self.more_than}",)


@dataclass(frozen=True, slots=True)
class AuthorIs:
    """Every given fact about the author's standing holds."""

    restricted: bool | None = None
    max_account_age_days: float | None = None
    min_account_age_days: float | None = None
    label: str | None = None
    min_strike_points: float | None = None
    cost: ClassVar[int] = 0

    def test(self, scope: Scope) -> Evidence | None:
        """The facts that hold; None when one does not (an unknown account age never holds)."""
        author = scope.author
        evidence: list[str] = []
        if self.restricted is not None:
            if author.restricted != self.restricted:
                return None
            evidence.append("author restricted" if self.restricted else "author not restricted")
        age = author.account_age_days
        if self.max_account_age_days is not None:
            if age is None or age > self.max_account_age_days:
                return None
            evidence.append(f"account {age:g} days old <= {self.max_account_age_days:g}")
        if self.min_account_age_days is not None:
            if age is None or age < self.min_account_age_days:
                return None
            evidence.append(f"account {age:g} days old >= {self.min_account_age_days:g}")
        if self.label is not None:
            if self.label not in author.labels:
                return None
            evidence.append(f"author label {self.label}")
        if self.min_strike_points is not None:
            if author.strike_points < self.min_strike_points:
                return None
            evidence.append(f"{author.strike_points:g} strike points >= {self.min_strike_points:g}")
        return tuple(evidence)


def lists_required(condition: Condition) -> frozenset[str] | None:
    """Keyword lists of which at least one must be found for ``condition`` to hold, or None
    when it can hold without any. Lets an evaluation skip most rules of a clean text with
    one set operation each, instead of walking their conditions.
    """
    if isinstance(condition, Keywords):
        return frozenset({condition.list_name})
    if isinstance(condition, AllOf):  # every child must hold: any child's need is a need
        needs = [need for need in map(lists_required, condition.children) if need is not None]
        return min(needs, key=len) if needs else None
    if isinstance(condition, AnyOf):  # some child must hold: one of their needs, if all have one
        union: set[str] = set()
        for child in condition.children:
            need = lists_required(child)
            if need is None:
                return None
            union |= need
        return frozenset(union)
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule of a rule set."""

    id: str
    policy: str
    verdict: Verdict
    applies_to: frozenset[ContentKind]
    shadow: bool
    description: str
    when: Condition
    needs: frozenset[str] | None = None
    """Keyword lists of which one must be found for ``when`` to hold (`lists_required`)."""
