"""The Trust & Safety rule engine: rules are data, loaded from a TOML file, checked and
compiled once, then evaluated against each piece of content.

A rule says: when its condition holds for content of the kinds it applies to, the content
violates ``policy`` and gets at least ``verdict``. Every matching rule is a hit; the
strongest verdict among the hits wins (ALLOW when there is none). A shadow rule is
evaluated and its hits recorded, but it never changes the verdict: that is how a new or
stricter rule is tried on live traffic before it takes effect.

The file format is in ``docs/tns-rules.md``. Check a file with
``python -m services.tns.domain.rules check FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from libs.errors import InvalidArgument
from services.tns.domain.content import AuthorContext, Content, ContentKind, Verdict
from services.tns.domain.detectors import Detector, KeywordIndex
from services.tns.domain.detectors import detectors as make_detectors
from services.tns.domain.rules_conditions import Rule, Scope
from services.tns.domain.rules_parsing import parse_document

__all__ = ["Evaluation", "Rule", "RuleHit", "RuleSet", "load_ruleset", "parse_ruleset"]


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule whose condition held, and why."""

    rule_id: str
    policy: str
    verdict: Verdict
    shadow: bool
    evidence: tuple[str, ...]
    """What made the condition hold, readable by a moderator; personal details are masked."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a rule set says about one piece of content."""

    verdict: Verdict
    """The strongest verdict among the effective hits; ALLOW when there is none."""
    hits: tuple[RuleHit, ...]
    """The effective (non-shadow) rules that matched, strongest first, then in file order."""
    shadow_hits: tuple[RuleHit, ...]
    """The shadow rules that matched: recorded, without effect on the verdict."""
    ruleset_version: str

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies the content violates (per the effective hits), strongest first."""
        return tuple(dict.fromkeys(hit.policy for hit in self.hits))


def _strength(hit: RuleHit) -> int:
    return -hit.verdict


@dataclass(frozen=True)
class RuleSet:
    """A compiled, immutable rule file; `evaluate` is safe to call from many threads."""

    version: str
    digest: str
    """sha256 (hex) of the file's text: tells two deployments of the same version apart."""
    rules: tuple[Rule, ...]
    velocity_windows: frozenset[tuple[ContentKind, int]]
    velocity_limits: Mapping[tuple[ContentKind, int], int] = field(default_factory=dict)
    """Per window, the count at which every rule has decided (max ``more_than`` + 1): the
    caller may stop counting there."""
    """The ``(kind, window seconds)`` counts the caller must put in `AuthorContext.recent`."""
    description: str = ""
    source: str = "<string>"
    keywords: KeywordIndex = field(default_factory=lambda: KeywordIndex({}), repr=False, compare=False)
    detectors: Mapping[str, Detector] = field(default_factory=make_detectors, repr=False, compare=False)
    _rules_for: Mapping[ContentKind, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kind = {kind: tuple(rule for rule in self.rules if kind in rule.applies_to) for kind in ContentKind}
        object.__setattr__(self, "_rules_for", by_kind)  # derived once; the dataclass is frozen

    def evaluate(
        self,
        content: Content,
        author: AuthorContext,
        scores: Mapping[str, float],
        thresholds: Mapping[str, float],
    ) -> Evaluation:
        """Run every rule that applies to ``content``.

        ``scores`` are the classifier's per-policy scores and ``thresholds`` its flagging
        thresholds; pass empty mappings when there is no model (model conditions then
        never hold). The text is normalized once and each detector runs at most once.
        """
        scope = Scope(content, author, scores, thresholds, self.keywords, self.detectors)
        hits: list[RuleHit] = []
        shadow_hits: list[RuleHit] = []
        found = scope.lists_found().keys()
        for rule in self._rules_for[content.kind]:
            if rule.needs is not None and found.isdisjoint(rule.needs):
                continue  # a list it needs is not in the text: it cannot hold
            evidence = rule.when.test(scope)
            if evidence is None:
                continue
            hit = RuleHit(rule.id, rule.policy, rule.verdict, rule.shadow, evidence)
            (shadow_hits if rule.shadow else hits).append(hit)
        hits.sort(key=_strength)  # stable: file order among equal verdicts
        shadow_hits.sort(key=_strength)
        verdict = hits[0].verdict if hits else Verdict.ALLOW
        return Evaluation(verdict, tuple(hits), tuple(shadow_hits), self.version)


def parse_ruleset(text: str, *, source: str = "<string>") -> RuleSet:
    """Compile a rule file's text; raise `InvalidArgument` listing every problem in it."""
    parsed = parse_document(text, source)
    return RuleSet(
        version=parsed.version,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        rules=parsed.rules,
        velocity_windows=parsed.velocity_windows,
        velocity_limits=parsed.velocity_limits,
        description=parsed.description,
        source=source,
        keywords=KeywordIndex(parsed.lists),
        detectors=make_detectors(parsed.allowed_domains),
    )


def load_ruleset(path: Path) -> RuleSet:
    """Read and compile a rule file (UTF-8); raise `InvalidArgument` when it is invalid."""
    return parse_ruleset(path.read_text(encoding="utf-8"), source=str(path))


def _check(paths: Sequence[str]) -> int:
    failed = 0
    for name in paths:
        try:
            ruleset = load_ruleset(Path(name))
        except InvalidArgument as error:
            failed += 1
            print(f"{name}: {error.message}")
            for violation in error.violations:
                print(f"  {violation.field}: {violation.description}")
            continue
        except (OSError, UnicodeDecodeError) as error:
            failed += 1
            print(f"{name}: cannot read: {error}")
            continue
        shadow = sum(rule.shadow for rule in ruleset.rules)
        print(f"{name}: ok, version {ruleset.version}, {len(ruleset.rules)} rules ({shadow} shadow)")
        print(f"  sha256 {ruleset.digest}")
    return 1 if failed else 0


def _try(args: argparse.Namespace) -> int:
    try:
        ruleset = load_ruleset(Path(args.file))
    except InvalidArgument as error:
        print(f"{args.file}: {error.message}; run 'check' for the details")
        return 1
    content = Content(
        kind=ContentKind(args.kind),
        content_id="cli",
        author_id="cli",
        title=args.title,
        body=args.body,
        category=args.category,
        price=args.price,
    )
    evaluation = ruleset.evaluate(content, AuthorContext(), {}, {})
    print(f"verdict {evaluation.verdict.name} (rules {evaluation.ruleset_version}, no model)")
    for hit in evaluation.hits + evaluation.shadow_hits:
        label = " [shadow]" if hit.shadow else ""
        print(f"  {hit.verdict.name:6} {hit.rule_id}{label}: {'; '.join(hit.evidence)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The rule-file command line: ``check FILE...`` validates, ``try FILE ...`` evaluates."""
    parser = argparse.ArgumentParser(prog="python -m services.tns.domain.rules", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate rule files, printing every problem")
    check.add_argument("files", nargs="+")
    trial = commands.add_parser("try", help="evaluate a text against a rule file (no model)")
    trial.add_argument("file")
    trial.add_argument("--kind", choices=[kind.value for kind in ContentKind], default="listing")
    trial.add_argument("--title", default="")
    trial.add_argument("--body", default="")
    trial.add_argument("--category", default="")
    trial.add_argument("--price", type=int, default=None)
    args = parser.parse_args(argv)
    return _check(args.files) if args.command == "check" else _try(args)


if __name__ == "__main__":
    sys.exit(main())
