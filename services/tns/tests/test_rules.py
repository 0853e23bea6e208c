"""The rule engine: rule files are validated with precise errors, conditions combine,
the strongest verdict wins, shadow rules have no effect, and the shipped rules catch
realistic violations while leaving ordinary listings and messages alone.
"""

# ruff: noqa: RUF001, RUF002, RUF003  # full-width, Cyrillic and dash look-alikes are what these tests feed in

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from libs.errors import FieldViolation, InvalidArgument
from services.tns.domain import text as text_module
from services.tns.domain.content import POLICIES, AuthorContext, Content, ContentKind, Verdict
from services.tns.domain.detectors import Detector, Match
from services.tns.domain.rules import Evaluation, RuleSet, load_ruleset, main, parse_ruleset
from services.tns.domain.text import NormalizedText

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default.toml"

LISTING, COMMENT, MESSAGE = ContentKind.LISTING, ContentKind.COMMENT, ContentKind.MESSAGE

_HEADER = """
version = "t1"
[lists]
drugs = ["大麻", "cocaine"]
payment = ["銀行振込", "bank transfer"]
insults = ["バカ", "idiot"]
[reference_prices]
"bags/brand" = 80000
"""


def _rules(body: str, header: str = _HEADER) -> RuleSet:
    return parse_ruleset(header + body)


def _content(body: str = "", kind: ContentKind = LISTING, **fields: object) -> Content:
    return Content(kind=kind, content_id="c1", author_id="u1", body=body, **fields)  # type: ignore[arg-type]


def _evaluate(
    ruleset: RuleSet,
    content: Content,
    author: AuthorContext | None = None,
    scores: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Evaluation:
    return ruleset.evaluate(content, author or AuthorContext(), scores or {}, thresholds or {})


def _violations(source: str) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as raised:
        parse_ruleset(source)
    return raised.value.violations


def _rule(when: str, *, rule_id: str = "r.one", verdict: str = "BLOCK", extra: str = "") -> str:
    return f"""
[[rules]]
id = "{rule_id}"
policy = "prohibited_item"
verdict = "{verdict}"
description = "a rule"
{extra}
when = {when}
"""


# --------------------------------------------------------------------------------------
# Validation

_POLICIES = "prohibited_item, counterfeit, offensive, offplatform_payment, offplatform_contact or expired_food"
_CONDITIONS = "all, any, not, keywords, detector, model, price_below_ratio, velocity, author, category_in or pattern"
_AUTHOR_KEYS = "restricted, max_account_age_days, min_account_age_days, label or min_strike_points"
_WINDOW = "a whole number and s, m, h or d, at most 30d"
_VELOCITY = "rules[0].when.velocity"


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    """One load reports every invalid value, each at its exact path."""
    source = (
        _HEADER
        + _rule('{ keywords = "drugs" }', rule_id="ok.one")
        + _rule('{ keywords = "drugs" }', rule_id="ok.one")  # duplicate id
        + _rule('{ detector = "fax" }', rule_id="bad.detector")
        + _rule('{ all = [{ keywords = "drugs" }, { keywords = "drgus" }] }', rule_id="bad.list")
        + """
[[rules]]
id = "bad.fields"
policy = "spam"
verdict = "BAN"
applies_to = ["listing", "tweet"]
shadow = "yes"
description = "bad fields"
when = { velocity = { kind = "listing", window = "1 hour", more_than = -1 } }
"""
    )
    violations = _violations(source)
    assert violations == [
        FieldViolation("rules[1].id", "duplicate rule id 'ok.one' (also rules[0])"),
        FieldViolation("rules[2].when.detector", "unknown detector 'fax' (expected phone, bank_account, email or url)"),
        FieldViolation("rules[3].when.all[1].keywords", "unknown keyword list 'drgus'"),
        FieldViolation("rules[4].policy", f"unknown policy 'spam' (expected {_POLICIES})"),
        FieldViolation("rules[4].verdict", "unknown verdict 'BAN' (expected ALLOW, WARN, REVIEW or BLOCK)"),
        FieldViolation("rules[4].applies_to[1]", "unknown content kind 'tweet' (expected listing, comment or message)"),
        FieldViolation("rules[4].shadow", "must be true or false"),
        FieldViolation("rules[4].when.velocity.window", f"bad window '1 hour': {_WINDOW}"),
        FieldViolation("rules[4].when.velocity.more_than", "must be a whole number from 0 to 999"),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('[[rules]]\nid = "a"', FieldViolation("version", "is required")),
        ('version = ""\n', FieldViolation("version", "must be a non-empty string")),
        ('version = "1"\n', FieldViolation("rules", "is required: at least one [[rules]] table")),
        ('version = "1"\nrules = 3\n', FieldViolation("rules", "must be a non-empty array of tables ([[rules]])")),
        ('version = "1"\nverison = "2"\n', FieldViolation("verison", "unknown key 'verison'; did you mean 'version'?")),
        (
            'version = "1"\n[lists]\nx = ["大麻", "殺"]\n',
            FieldViolation(
                "lists.x[1]",
                "term '殺': a term needs at least 2 characters once spaces and punctuation are removed",
            ),
        ),
        ('version = "1"\n[lists]\nx = []\n', FieldViolation("lists.x", "must be a non-empty array of strings")),
        (
            'version = "1"\n[lists]\nDrugs = ["大麻"]\n',
            FieldViolation(
                "lists.Drugs", "a name is lowercase letters, digits and underscores, starting with a letter"
            ),
        ),
        (
            'version = "1"\n[patterns]\nbad = "(unclosed"\n',
            FieldViolation(
                "patterns.bad", "invalid regular expression: missing ), unterminated subpattern at position 0"
            ),
        ),
        (
            'version = "1"\n[reference_prices]\n"bags" = -5\n',
            FieldViolation("reference_prices.bags", "must be a positive whole number of yen"),
        ),
        (
            'version = "1"\nallowed_domains = ["Furima JP"]\n',
            FieldViolation("allowed_domains[0]", "'Furima JP' is not a lowercase domain name"),
        ),
    ],
)
def test_file_level_problems_are_reported(source: str, expected: FieldViolation) -> None:
    """Missing version, unknown keys, bad lists, patterns and prices are reported by path."""
    assert expected in _violations(source)


@pytest.mark.parametrize(
    ("when", "path", "description"),
    [
        ("{}", "rules[0].when", f"empty condition: expected one of {_CONDITIONS}"),
        ('{ keyword = "drugs" }', "rules[0].when.keyword", "unknown key 'keyword'; did you mean 'keywords'?"),
        (
            '{ keywords = "drugs", category_in = ["food"] }',
            "rules[0].when",
            "one condition per table, found keywords, category_in: combine them with 'all' or 'any'",
        ),
        ("{ all = [] }", "rules[0].when.all", "must be a non-empty array of conditions"),
        ('{ any = ["drugs"] }', "rules[0].when.any[0]", "must be a table holding one condition"),
        ('{ not = { keywords = "nope" } }', "rules[0].when.not.keywords", "unknown keyword list 'nope'"),
        ('{ detector = "phone", min_count = 0 }', "rules[0].when.min_count", "must be a whole number, 1 or more"),
        (
            '{ keywords = "drugs", min_count = 2 }',
            "rules[0].when.min_count",
            "'min_count' refines 'detector' conditions only",
        ),
        ('{ model = "spam" }', "rules[0].when.model", f"unknown policy 'spam' (expected {_POLICIES})"),
        ('{ model = "offensive", min_score = 1.5 }', "rules[0].when.min_score", "must be a number from 0 to 1"),
        ("{ price_below_ratio = 2 }", "rules[0].when.price_below_ratio", "must be a number above 0 and at most 1"),
        ("{ price_below_ratio = true }", "rules[0].when.price_below_ratio", "must be a number above 0 and at most 1"),
        (
            '{ velocity = { kind = "post", window = "1h", more_than = 3 } }',
            f"{_VELOCITY}.kind",
            "unknown content kind 'post' (expected listing, comment or message)",
        ),
        (
            '{ velocity = { kind = "listing", window = "0h", more_than = 3 } }',
            f"{_VELOCITY}.window",
            f"bad window '0h': {_WINDOW}",
        ),
        (
            '{ velocity = { kind = "listing", window = "31d", more_than = 3 } }',
            f"{_VELOCITY}.window",
            f"bad window '31d': {_WINDOW}",
        ),
        (
            '{ velocity = { kind = "listing", window = "1h", more_than = 1000 } }',
            f"{_VELOCITY}.more_than",
            "must be a whole number from 0 to 999",
        ),
        ('{ velocity = { kind = "listing" } }', f"{_VELOCITY}.window", "is required"),
        ("{ author = {} }", "rules[0].when.author", f"must be a table with at least one of {_AUTHOR_KEYS}"),
        ('{ author = { restricted = "yes" } }', "rules[0].when.author.restricted", "must be true or false"),
        (
            "{ author = { max_account_age_days = -1 } }",
            "rules[0].when.author.max_account_age_days",
            "must be a number, 0 or more",
        ),
        (
            "{ author = { banned = true } }",
            "rules[0].when.author.banned",
            f"unknown key 'banned' (expected {_AUTHOR_KEYS})",
        ),
        ("{ category_in = [] }", "rules[0].when.category_in", "must be a non-empty array of strings"),
        ('{ pattern = "nope" }', "rules[0].when.pattern", "unknown pattern 'nope'"),
    ],
)
def test_condition_problems_are_reported_at_their_path(when: str, path: str, description: str) -> None:
    """Each malformed condition is reported at the exact path of the offending value."""
    assert FieldViolation(path, description) in _violations(_HEADER + _rule(when))


def test_an_invalid_list_or_pattern_is_reported_once() -> None:
    """A rule using a broken list or pattern is not reported again: the problem is at its source."""
    header = 'version = "1"\n[lists]\nx = ["大麻", 3]\n[patterns]\nbad = "("\n'
    violations = _violations(header + _rule('{ any = [{ keywords = "x" }, { pattern = "bad" }] }'))
    assert [violation.field for violation in violations] == ["lists.x[1]", "patterns.bad"]
    assert violations[0].description == "must be a non-empty string"


def test_rule_fields_are_required() -> None:
    """A rule without id, policy, verdict, description or when is reported field by field."""
    violations = _violations(_HEADER + "[[rules]]\nshadow = false\n")
    assert [violation.field for violation in violations] == [
        "rules[0].id",
        "rules[0].policy",
        "rules[0].verdict",
        "rules[0].description",
        "rules[0].when",
    ]
    assert {violation.description for violation in violations} == {"is required"}


def test_rule_ids_are_dotted_lowercase_names() -> None:
    """A rule id such as 'Off Platform' is rejected."""
    assert FieldViolation(
        "rules[0].id", "an id is dotted lowercase names, such as 'offplatform.bank_account'"
    ) in _violations(_HEADER + _rule('{ keywords = "drugs" }', rule_id="Off Platform"))


def test_price_condition_needs_reference_prices() -> None:
    """price_below_ratio without any reference price is an error, not a rule that never fires."""
    header = 'version = "1"\n'
    assert FieldViolation("rules[0].when.price_below_ratio", "no reference_prices to compare with") in _violations(
        header + _rule("{ price_below_ratio = 0.2 }")
    )


def test_toml_syntax_errors_are_one_violation_with_the_line() -> None:
    """A file that is not TOML yields one violation naming the line."""
    with pytest.raises(InvalidArgument) as raised:
        parse_ruleset('version = "1"\n[[rules]\n', source="bad.toml")
    (violation,) = raised.value.violations
    assert violation.field == "bad.toml"
    assert "line 2" in violation.description


def test_deep_nesting_is_rejected() -> None:
    """Conditions nested absurdly deep are an error, not a recursion crash."""
    when = '{ keywords = "drugs" }'
    for _ in range(20):
        when = f"{{ not = {when} }}"
    violations = _violations(_HEADER + _rule(when))
    assert violations[0].description == "conditions nest more than 16 deep"


# --------------------------------------------------------------------------------------
# Loading


def test_a_valid_file_compiles_with_version_digest_and_windows() -> None:
    """version, sha256 digest and the velocity windows the caller must count come from the file."""
    source = _HEADER + _rule('{ velocity = { kind = "listing", window = "1h", more_than = 5 } }')
    source += _rule('{ velocity = { kind = "message", window = "10m", more_than = 5 } }', rule_id="r.two")
    ruleset = parse_ruleset(source)
    assert ruleset.version == "t1"
    assert ruleset.digest == hashlib.sha256(source.encode()).hexdigest()
    assert ruleset.velocity_windows == frozenset({(LISTING, 3600), (MESSAGE, 600)})
    assert [rule.id for rule in ruleset.rules] == ["r.one", "r.two"]


def test_rule_sets_are_immutable() -> None:
    """A compiled rule set cannot be changed in place."""
    ruleset = _rules(_rule('{ keywords = "drugs" }'))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.version = "other"  # type: ignore[misc]


def test_check_command_prints_every_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` exits 1 listing each problem with its path, and 0 for a valid file."""
    bad = tmp_path / "bad.toml"
    bad.write_text(_HEADER + _rule('{ keywords = "drgus" }'), encoding="utf-8")
    assert main(["check", str(bad)]) == 1
    assert "rules[0].when.keywords: unknown keyword list 'drgus'" in capsys.readouterr().out
    assert main(["check", str(DEFAULT_RULES)]) == 0
    assert "ok, version" in capsys.readouterr().out


def test_try_command_prints_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    """`try` evaluates a text against a file without a model."""
    assert main(["try", str(DEFAULT_RULES), "--kind", "message", "--body", "０９０ １２３４ ５６７８"]) == 0
    output = capsys.readouterr().out
    assert "verdict WARN" in output
    assert "contact.phone" in output
    assert "5678" in output
    assert "1234" not in output.replace("***5678", "")


# --------------------------------------------------------------------------------------
# Evaluation


def test_no_hit_means_allow() -> None:
    """Content no rule matches is allowed, with no hits."""
    evaluation = _evaluate(_rules(_rule('{ keywords = "drugs" }')), _content("ポケモンカード"))
    assert evaluation == Evaluation(Verdict.ALLOW, (), (), "t1")
    assert evaluation.policies == ()


def test_strongest_verdict_wins_and_hits_are_strongest_first() -> None:
    """Of a WARN and a BLOCK hit, BLOCK decides; hits list the strongest first."""
    ruleset = _rules(
        _rule('{ keywords = "payment" }', rule_id="a.warn", verdict="WARN")
        + _rule('{ keywords = "drugs" }', rule_id="b.block", verdict="BLOCK")
        + _rule('{ keywords = "drugs" }', rule_id="c.review", verdict="REVIEW")
    )
    evaluation = _evaluate(ruleset, _content("大麻 銀行振込のみ"))
    assert evaluation.verdict is Verdict.BLOCK
    assert [hit.rule_id for hit in evaluation.hits] == ["b.block", "c.review", "a.warn"]
    assert evaluation.policies == ("prohibited_item",)


def test_shadow_rules_are_recorded_without_effect() -> None:
    """A matching shadow rule is in shadow_hits and never changes the verdict."""
    ruleset = _rules(
        _rule('{ keywords = "payment" }', rule_id="live.warn", verdict="WARN")
        + _rule('{ keywords = "payment" }', rule_id="candidate.block", verdict="BLOCK", extra="shadow = true")
    )
    evaluation = _evaluate(ruleset, _content("銀行振込のみ"))
    assert evaluation.verdict is Verdict.WARN
    assert [hit.rule_id for hit in evaluation.hits] == ["live.warn"]
    assert [(hit.rule_id, hit.shadow, hit.verdict) for hit in evaluation.shadow_hits] == [
        ("candidate.block", True, Verdict.BLOCK)
    ]


def test_a_shadow_hit_alone_still_allows() -> None:
    """When only shadow rules match, the content is allowed."""
    ruleset = _rules(_rule('{ keywords = "drugs" }', extra="shadow = true"))
    evaluation = _evaluate(ruleset, _content("大麻"))
    assert evaluation.verdict is Verdict.ALLOW
    assert evaluation.hits == ()
    assert len(evaluation.shadow_hits) == 1


def test_applies_to_limits_the_kinds_a_rule_sees() -> None:
    """A rule for comments does not fire on a listing with the same text."""
    ruleset = _rules(_rule('{ keywords = "insults" }', extra='applies_to = ["comment"]'))
    assert _evaluate(ruleset, _content("バカ", kind=LISTING)).verdict is Verdict.ALLOW
    assert _evaluate(ruleset, _content("バカ", kind=COMMENT)).verdict is Verdict.BLOCK


def test_all_any_and_not_combine() -> None:
    """An "all" needs every child, an "any" one of them, a "not" the absence of its child."""
    ruleset = _rules(
        _rule('{ all = [{ keywords = "drugs" }, { not = { keywords = "payment" } }] }', rule_id="drugs.only")
        + _rule('{ any = [{ keywords = "insults" }, { detector = "phone" }] }', rule_id="either")
    )
    assert [h.rule_id for h in _evaluate(ruleset, _content("大麻")).hits] == ["drugs.only"]
    assert _evaluate(ruleset, _content("大麻 銀行振込")).hits == ()
    assert [h.rule_id for h in _evaluate(ruleset, _content("090-1234-5678")).hits] == ["either"]
    assert [h.rule_id for h in _evaluate(ruleset, _content("idiot")).hits] == ["either"]


def test_rules_without_a_needed_list_still_run() -> None:
    """Skipping rules whose keyword lists are absent never skips one that could hold."""
    ruleset = _rules(
        _rule('{ all = [{ not = { keywords = "drugs" } }, { category_in = ["food"] }] }', rule_id="no.drugs")
        + _rule('{ any = [{ keywords = "drugs" }, { keywords = "payment" }] }', rule_id="either.list")
    )
    assert [hit.rule_id for hit in _evaluate(ruleset, _content("おせんべい", category="food")).hits] == ["no.drugs"]
    assert [hit.rule_id for hit in _evaluate(ruleset, _content("銀行振込のみ")).hits] == ["either.list"]
    assert ruleset.rules[0].needs is None
    assert ruleset.rules[1].needs == frozenset({"drugs", "payment"})


def test_evidence_explains_the_hit() -> None:
    """Evidence names the terms and masked details that made the condition hold."""
    ruleset = _rules(_rule('{ all = [{ keywords = "payment" }, { detector = "bank_account" }] }'))
    (hit,) = _evaluate(ruleset, _content("銀行振込 口座番号 1234567")).hits
    assert hit.evidence == ('payment: "銀行振込"', "bank account number ***4567")


def test_detector_min_count() -> None:
    """min_count asks for several findings of a detector."""
    ruleset = _rules(_rule('{ detector = "phone", min_count = 2 }'))
    assert _evaluate(ruleset, _content("090-1234-5678")).hits == ()
    assert len(_evaluate(ruleset, _content("090-1234-5678 / 03-1234-5678")).hits) == 1


@pytest.mark.parametrize(
    ("count", "fires"),
    [(21, True), (20, False), (None, False)],
)
def test_velocity_fires_above_the_limit_only(count: int | None, fires: bool) -> None:
    """A velocity condition holds when the supplied count exceeds more_than; a missing count never holds."""
    ruleset = _rules(_rule('{ velocity = { kind = "listing", window = "1h", more_than = 20 } }'))
    recent = {} if count is None else {(LISTING, 3600): count}
    evaluation = _evaluate(ruleset, _content("x"), AuthorContext(recent=recent))
    assert (evaluation.verdict is Verdict.BLOCK) is fires
    if fires:
        assert evaluation.hits[0].evidence == ("21 listings in 1h > 20",)


@pytest.mark.parametrize(
    ("author_rule", "author", "fires"),
    [
        ("{ restricted = true }", AuthorContext(restricted=True), True),
        ("{ restricted = true }", AuthorContext(), False),
        ("{ max_account_age_days = 7 }", AuthorContext(account_age_days=3), True),
        ("{ max_account_age_days = 7 }", AuthorContext(account_age_days=30), False),
        ("{ max_account_age_days = 7 }", AuthorContext(account_age_days=None), False),
        ("{ min_account_age_days = 7 }", AuthorContext(account_age_days=30), True),
        ('{ label = "new_seller" }', AuthorContext(labels=frozenset({"new_seller"})), True),
        ('{ label = "new_seller" }', AuthorContext(labels=frozenset({"trusted"})), False),
        ("{ min_strike_points = 3 }", AuthorContext(strike_points=3.5), True),
        ("{ min_strike_points = 3 }", AuthorContext(strike_points=1), False),
        ("{ restricted = false, min_strike_points = 1 }", AuthorContext(strike_points=2), True),
        ("{ restricted = true, min_strike_points = 1 }", AuthorContext(strike_points=2), False),
    ],
)
def test_author_standing_conditions(author_rule: str, author: AuthorContext, fires: bool) -> None:
    """Author conditions check restriction, account age, labels and strikes; all given must hold."""
    ruleset = _rules(_rule(f"{{ author = {author_rule} }}"))
    assert (_evaluate(ruleset, _content("x"), author).verdict is Verdict.BLOCK) is fires


@pytest.mark.parametrize(
    ("content", "fires"),
    [
        (_content("x", category="bags/brand", price=15_999), True),
        (_content("x", category="bags/brand/chanel", price=9_800), True),  # nearest listed ancestor
        (_content("x", category="bags/brand", price=16_000), False),  # exactly 0.2 × 80,000
        (_content("x", category="bags/brand", price=None), False),
        (_content("x", category="books", price=100), False),  # no reference price
        (_content("x", category="bags/brand", price=100, currency="USD"), False),
        (_content("x", kind=MESSAGE, category="bags/brand", price=100), False),
    ],
)
def test_price_below_ratio(content: Content, fires: bool) -> None:
    """A listing under ratio × its category's reference price (JPY) is a hit; anything else is not."""
    ruleset = _rules(_rule("{ price_below_ratio = 0.2 }"))
    assert (_evaluate(ruleset, content).verdict is Verdict.BLOCK) is fires


def test_category_in_matches_the_category_and_below_whatever_the_case() -> None:
    """category_in = ['food'] holds for 'food', 'Food' and 'food/snacks', not 'foodie'."""
    ruleset = _rules(_rule('{ category_in = ["food"] }'))
    assert _evaluate(ruleset, _content("x", category="food/snacks")).verdict is Verdict.BLOCK
    assert _evaluate(ruleset, _content("x", category="Food")).verdict is Verdict.BLOCK
    assert _evaluate(ruleset, _content("x", category="foodie")).verdict is Verdict.ALLOW


def test_reference_prices_match_whatever_the_case() -> None:
    """A listing in 'Bags/Brand/Chanel' finds the reference price of 'bags/brand'."""
    ruleset = _rules(_rule("{ price_below_ratio = 0.2 }"))
    assert _evaluate(ruleset, _content("x", category="Bags/Brand/Chanel", price=100)).verdict is Verdict.BLOCK


def test_patterns_must_be_lower_case() -> None:
    """A pattern with an upper-case letter could never match casefolded text: it is an error."""
    assert FieldViolation(
        "patterns.shout", "write letters in lower case: patterns match the casefolded text"
    ) in _violations('version = "1"\n[patterns]\nshout = "LINE"\n')
    parse_ruleset(_HEADER + '[patterns]\nok = "\\\\S+\\\\d"\n' + _rule('{ pattern = "ok" }'))


@pytest.mark.parametrize(
    ("when", "scores", "fires"),
    [
        ('{ model = "offensive" }', {"offensive": 0.8}, True),  # at the model's threshold
        ('{ model = "offensive" }', {"offensive": 0.79}, False),
        ('{ model = "offensive", min_score = 0.95 }', {"offensive": 0.9}, False),  # a stricter bar
        ('{ model = "offensive", min_score = 0.5 }', {"offensive": 0.6}, True),
        ('{ model = "offensive" }', {}, False),  # no model
    ],
)
def test_model_conditions(when: str, scores: dict[str, float], fires: bool) -> None:
    """A model condition holds at the policy's threshold, or at an explicit min_score."""
    ruleset = _rules(_rule(when))
    evaluation = _evaluate(ruleset, _content("x"), scores=scores, thresholds={"offensive": 0.8})
    assert (evaluation.verdict is Verdict.BLOCK) is fires


def test_patterns_match_the_folded_text() -> None:
    """A pattern written in katakana matches hiragana, full-width and upper-case text."""
    header = _HEADER + '[patterns]\nsoon = "期限.{0,4}(間近|アト[1-3]日)"\n'
    ruleset = _rules(_rule('{ pattern = "soon" }'), header=header)
    assert _evaluate(ruleset, _content("賞味期限はあと２日")).verdict is Verdict.BLOCK
    assert _evaluate(ruleset, _content("賞味期限は来年")).verdict is Verdict.ALLOW


def test_text_is_normalized_once_and_each_detector_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many rules use it, each detector runs at most once per evaluation."""
    ruleset = _rules(
        _rule('{ detector = "phone" }', rule_id="a")
        + _rule('{ all = [{ keywords = "drugs" }, { detector = "phone" }] }', rule_id="b")
        + _rule('{ any = [{ detector = "email" }, { detector = "phone" }] }', rule_id="c")
    )
    calls: list[str] = []

    def counted(name: str, detector: Detector) -> Detector:
        def run(text: NormalizedText) -> tuple[Match, ...]:
            calls.append(name)
            return detector(text)

        return run

    folds: list[str] = []
    real_fold = text_module.fold
    monkeypatch.setattr(text_module, "fold", lambda value: folds.append(value) or real_fold(value))
    counting = dataclasses.replace(
        ruleset, detectors={name: counted(name, detector) for name, detector in ruleset.detectors.items()}
    )
    evaluation = _evaluate(counting, _content("大麻 090-1234-5678"))
    assert [hit.rule_id for hit in evaluation.hits] == ["a", "b", "c"]
    assert sorted(calls) == ["email", "phone"]
    assert len(folds) == 1


# --------------------------------------------------------------------------------------
# The shipped rule set


@pytest.fixture(scope="module")
def default_rules() -> RuleSet:
    """The rule set the service ships with."""
    return load_ruleset(DEFAULT_RULES)


def test_default_rules_cover_every_policy_and_have_shadow_velocity_and_author_rules(default_rules: RuleSet) -> None:
    """The shipped file loads, covers every policy, and includes shadow, velocity and standing rules."""
    assert {rule.policy for rule in default_rules.rules} == set(POLICIES)
    assert any(rule.shadow for rule in default_rules.rules)
    assert (LISTING, 3600) in default_rules.velocity_windows
    assert (MESSAGE, 600) in default_rules.velocity_windows
    assert {f"model.{policy}" for policy in POLICIES} <= {rule.id for rule in default_rules.rules}


_VIOLATIONS = [
    # (kind, title, body, category, price, policy, at least this verdict)
    (LISTING, "大麻リキッド", "高濃度 即日発送します", "", None, "prohibited_item", Verdict.BLOCK),
    (LISTING, "ｺｶｲﾝ", "少量あります", "", None, "prohibited_item", Verdict.BLOCK),
    (MESSAGE, "", "c0ca1ne available, discreet shipping", "", None, "prohibited_item", Verdict.BLOCK),
    (LISTING, "覚.せ.い.剤", "", "", None, "prohibited_item", Verdict.BLOCK),
    (LISTING, "実弾 10発", "本物です", "hobby", 5000, "prohibited_item", Verdict.BLOCK),
    (LISTING, "Real gun", "Real gun for sale, live ammo included", "", 90000, "prohibited_item", Verdict.BLOCK),
    (LISTING, "電動ガン", "威力アップ改造済み 規制値超え", "hobby/airsoft", 30000, "prohibited_item", Verdict.REVIEW),
    (LISTING, "ルイヴィトン 財布", "スーパーコピー N級品です", "wallets/brand", 9800, "counterfeit", Verdict.BLOCK),
    (LISTING, "CHANEL", "1:1 copy, mirror quality", "bags/brand/chanel", 12000, "counterfeit", Verdict.BLOCK),
    (LISTING, "ROLEX デイトナ", "新品未使用", "watches/luxury", 9800, "counterfeit", Verdict.REVIEW),
    (LISTING, "GUCCI バッグ", "レプリカですが綺麗です", "bags/brand", 30000, "counterfeit", Verdict.REVIEW),
    (COMMENT, "", "死ね", "", None, "offensive", Verdict.BLOCK),
    (COMMENT, "", "お前バカだろ", "", None, "offensive", Verdict.WARN),
    (MESSAGE, "", "you are an idiot", "", None, "offensive", Verdict.WARN),
    (MESSAGE, "", "just k y s", "", None, "offensive", Verdict.BLOCK),
    (MESSAGE, "", "殺すぞ", "", None, "offensive", Verdict.BLOCK),
    (
        MESSAGE,
        "",
        "please transfer the money to my bank account 1234567",
        "",
        None,
        "offplatform_payment",
        Verdict.BLOCK,
    ),
    (
        MESSAGE,
        "",
        "三井住友銀行 新宿支店 普通 １２３４５６７ に振り込んでください",
        "",
        None,
        "offplatform_payment",
        Verdict.BLOCK,
    ),
    (LISTING, "iPhone 13", "銀行振込のみ対応です", "electronics", 50000, "offplatform_payment", Verdict.WARN),
    (MESSAGE, "", "PayPayで払ってもらえますか？", "", None, "offplatform_payment", Verdict.WARN),
    (MESSAGE, "", "Can you pay with Venmo or Zelle instead?", "", None, "offplatform_payment", Verdict.WARN),
    (MESSAGE, "", "現金手渡しで。090-1234-5678に電話ください", "", None, "offplatform_payment", Verdict.BLOCK),
    (MESSAGE, "", "電話番号は０９０ １２３４ ５６７８です", "", None, "offplatform_contact", Verdict.WARN),
    (MESSAGE, "", "〇九〇の一二三四の五六七八に電話して", "", None, "offplatform_contact", Verdict.WARN),
    (MESSAGE, "", "連絡先 abc123あっとgmail.com", "", None, "offplatform_contact", Verdict.WARN),
    (COMMENT, "", "LINE ID: furima_deal", "", None, "offplatform_contact", Verdict.WARN),
    (COMMENT, "", "ライン交換しませんか", "", None, "offplatform_contact", Verdict.WARN),
    (LISTING, "詳細", "詳しくは https://example.com へ", "", 1000, "offplatform_contact", Verdict.WARN),
    (MESSAGE, "", "text me on whatsapp", "", None, "offplatform_contact", Verdict.WARN),
    (LISTING, "お菓子", "賞味期限切れ まとめ売り", "food/snacks", 500, "expired_food", Verdict.BLOCK),
    (
        LISTING,
        "Protein",
        "expired protein powder, still good",
        "health/supplements",
        2000,
        "expired_food",
        Verdict.BLOCK,
    ),
    (LISTING, "レトルトカレー", "賞味期限は明日までです", "food", 300, "expired_food", Verdict.REVIEW),
    (LISTING, "おまとめ", "期限切れのお菓子です", "toys", 300, "expired_food", Verdict.REVIEW),
    (MESSAGE, "", "チョコレート、消費期限昨日までだったのでお安くしました", "", None, "expired_food", Verdict.REVIEW),
    (LISTING, "コーヒー豆", "賞味期限2020.09.03（過ぎています）", "Food", 800, "expired_food", Verdict.BLOCK),
    (
        LISTING,
        "Apple Watch",
        "Honestly it's ｓｔｏｌｅｎ but it works fine",
        "electronics",
        9000,
        "prohibited_item",
        Verdict.REVIEW,
    ),
    (LISTING, "ドームツアー チケット", "定価以上で。電子チケット", "tickets", 30000, "prohibited_item", Verdict.REVIEW),
    (LISTING, "現金 20万円", "カード払いでどうぞ", "", 220000, "prohibited_item", Verdict.REVIEW),
    (LISTING, "Party favors 5g", "You know what this is. DM for menu.", "", 5000, "prohibited_item", Verdict.REVIEW),
    (COMMENT, "", "can I buy the codeine syrup without a prescription?", "", None, "prohibited_item", Verdict.BLOCK),
    (COMMENT, "", "こちらのスタンガンは本物ですか？", "", None, "prohibited_item", Verdict.REVIEW),
    (MESSAGE, "", "I'll pack the ロレックス fake so customs won't notice", "", None, "counterfeit", Verdict.REVIEW),
    (LISTING, "シャネル ベルト 1:1", "1:1で作られたシャネルのベルト。", "", 5000, "counterfeit", Verdict.REVIEW),
    (COMMENT, "", "ﾍﾞﾄﾅﾑ人の方は信用できませんので、ご遠慮ください。", "", None, "offensive", Verdict.BLOCK),
    (MESSAGE, "", "I'll post your address everywhere", "", None, "offensive", Verdict.BLOCK),
    (MESSAGE, "", "Kyashで払ってくれたら2000円にするよ", "", None, "offplatform_payment", Verdict.WARN),
    (MESSAGE, "", "my LINE is emily4214", "", None, "offplatform_contact", Verdict.WARN),
    (MESSAGE, "", "my number is 310.555.3742", "", None, "offplatform_contact", Verdict.WARN),
]


@pytest.mark.parametrize(
    ("kind", "title", "body", "category", "price", "policy", "verdict"),
    _VIOLATIONS,
    ids=[f"{row[6]}-{row[1] or row[2]}"[:40] for row in _VIOLATIONS],
)
def test_default_rules_catch_realistic_violations(
    default_rules: RuleSet,
    kind: ContentKind,
    title: str,
    body: str,
    category: str,
    price: int | None,
    policy: str,
    verdict: Verdict,
) -> None:
    """Without a model, the shipped rules flag realistic JP/EN violations of each policy."""
    content = Content(kind, "c", "u", title=title, body=body, category=category, price=price)
    evaluation = default_rules.evaluate(content, AuthorContext(account_age_days=200), {}, {})
    assert evaluation.verdict >= verdict
    assert policy in evaluation.policies


_CLEAN = [
    (
        LISTING,
        "【美品】ルイヴィトン モノグラム",
        "正規品です。偽物ではありません。箱付き ¥120,000",
        "bags/brand/louis_vuitton",
        120000,
    ),
    (LISTING, "ポケモンカード まとめ売り", "100枚 2026年12月1日発送予定", "toys", 3000),
    (LISTING, "しゃぶしゃぶ鍋", "ほぼ新品です", "kitchen", 2000),
    (LISTING, "おしゃぶり", "新品未使用、2個セット", "baby", 500),
    (LISTING, "ワンピース", "型くずれなし。買ったばかりですがサイズが合いませんでした", "clothing", 2000),
    (LISTING, "Baccarat バカラ グラス", "ペアで。箱あり", "kitchen", 8000),
    (LISTING, "東京マルイ 電動ガン M4", "10歳以上用 エアガン 動作確認済み", "hobby/airsoft", 30000),
    (LISTING, "Leather jacket", "Classic leather jacket, world class quality, fits like a glove", "clothing", 5000),
    (LISTING, "Mug", "Shipping after the bank holiday. Order 1234567 ships Monday.", "kitchen", 1000),
    (LISTING, "Tシャツ", "普通郵便で発送します。追跡番号 1234567 をお知らせします", "clothing", 800),
    (LISTING, "スニーカー", "サイズ 25cm 重さ 1200g 価格 12,000円 数量 3個", "shoes", 12000),
    (LISTING, "ネックレス", "オンラインショップで購入しました ラインストーン付き", "accessories", 1500),
    (LISTING, "フェイクファー コート", "Mサイズ 冬物", "clothing", 3000),
    (LISTING, "Node.js入門 第2版", "ver.2.0 対応", "books", 1200),
    (LISTING, "シネマ 映画パンフレット", "まとめて10冊", "books", 1000),
    (LISTING, "Call Me By Your Name", "Blu-ray, like new", "media", 1500),
    (LISTING, "除草剤", "weed killer 2L 未開封", "garden", 1500),
    (LISTING, "ヒロイン フィギュア", "箱なし", "toys", 3000),
    (LISTING, "お菓子詰め合わせ", "賞味期限 2027年3月", "food/snacks", 1500),
    (LISTING, "ノートPC", "保証期限切れですが動作良好", "electronics", 20000),
    (LISTING, "漢数字ドリル", "一二三四五六七八九十 小学生向け", "books", 500),
    (LISTING, "レプリカユニフォーム 日本代表", "サイズL", "sports", 5000),
    (LISTING, "HERMES バーキン", "正規店購入 ¥2,500,000", "bags/brand/hermes", 2_500_000),
    (MESSAGE, "", "ありがとうございます！明日発送しますね", "", None),
    (MESSAGE, "", "Thanks! I'll ship it tomorrow. Tracking number 1234 5678 9012", "", None),
    (MESSAGE, "", "Is this still available? I can pick it up at 3pm", "", None),
    (COMMENT, "", "こちらお値下げ可能でしょうか？", "", None),
    (COMMENT, "", "バカ売れ中のアイテムですね！", "", None),
    (COMMENT, "", "look at the stitching, it is authentic, not a fake", "", None),
    (LISTING, "インコ用ケージ", "インコ用のケージです。生体はおりません。", "pets", 2000),
    (LISTING, "水槽セット", "【商品】水槽セット（生体なし）", "pets", 3000),
    (MESSAGE, "", "申し訳ありませんが、アプリ外でのやり取りはお断りしています。", "", None),
    (LISTING, "GUCCI 財布", "正規店で購入しました。レシートのコピー付きです。", "wallets/brand", 45000),
    (LISTING, "iPhone 13", "SIMフリー LINE対応 Apple IDはサインアウト済み", "electronics", 50000),
    (LISTING, "レンズ", "SONY FE 50mm F1.8 背景のボケが綺麗です", "cameras", 20000),
    (LISTING, "ブレスレット", "サイズ 18cm 重さ 12.5g 型番 ABC-1234567", "accessories", 3000),
]


@pytest.mark.parametrize(
    ("kind", "title", "body", "category", "price"),
    _CLEAN,
    ids=[(row[1] or row[2])[:30] for row in _CLEAN],
)
def test_default_rules_allow_ordinary_content(
    default_rules: RuleSet, kind: ContentKind, title: str, body: str, category: str, price: int | None
) -> None:
    """Ordinary listings and messages, including look-alikes of banned words, are allowed."""
    content = Content(kind, "c", "u", title=title, body=body, category=category, price=price)
    evaluation = default_rules.evaluate(content, AuthorContext(account_age_days=200), {}, {})
    assert evaluation.hits == (), evaluation.hits
    assert evaluation.verdict is Verdict.ALLOW


def test_default_rules_velocity_and_standing(default_rules: RuleSet) -> None:
    """Bursts of listings or messages and repeat offenders are caught; a restricted author is
    left to the service (it refuses with "standing.restricted" and no strike).
    """
    listing = Content(LISTING, "c", "u", title="Tシャツ", body="新品", category="clothing", price=1000)
    burst = AuthorContext(account_age_days=200, recent={(LISTING, 3600): 31})
    assert default_rules.evaluate(listing, burst, {}, {}).verdict is Verdict.REVIEW
    restricted = AuthorContext(account_age_days=200, restricted=True)
    assert default_rules.evaluate(listing, restricted, {}, {}).verdict is Verdict.ALLOW
    repeat = AuthorContext(account_age_days=200, strike_points=3)
    contact = Content(MESSAGE, "c", "u", body="電話ください 090-1234-5678")
    assert default_rules.evaluate(contact, repeat, {}, {}).verdict is Verdict.BLOCK
    message = Content(MESSAGE, "c", "u", body="こんにちは")
    spam = AuthorContext(recent={(MESSAGE, 600): 61})
    assert default_rules.evaluate(message, spam, {}, {}).verdict is Verdict.WARN


def test_default_rules_shadow_candidates_do_not_change_verdicts(default_rules: RuleSet) -> None:
    """The shipped shadow rules record their hits and leave the verdict as the live rules decide."""
    content = Content(MESSAGE, "c", "u", body="銀行振込でお願いします")
    evaluation = default_rules.evaluate(content, AuthorContext(), {}, {})
    assert evaluation.verdict is Verdict.WARN
    assert "offplatform.payment_methods_block" in [hit.rule_id for hit in evaluation.shadow_hits]
    cheap = Content(LISTING, "c", "u", title="CHANEL", body="美品", category="bags/brand", price=15000)
    evaluation = default_rules.evaluate(cheap, AuthorContext(account_age_days=200), {}, {})
    assert evaluation.verdict is Verdict.ALLOW
    assert [hit.rule_id for hit in evaluation.shadow_hits] == ["counterfeit.price_anomaly_strict"]


def test_default_rules_use_the_model_when_given(default_rules: RuleSet) -> None:
    """A model score at the threshold sends clean-looking text to review."""
    content = Content(COMMENT, "c", "u", body="ふつうのコメント")
    scores = dict.fromkeys(POLICIES, 0.0) | {"offensive": 0.9}
    thresholds = dict.fromkeys(POLICIES, 0.8)
    evaluation = default_rules.evaluate(content, AuthorContext(), scores, thresholds)
    assert evaluation.verdict is Verdict.REVIEW
    assert [hit.rule_id for hit in evaluation.hits] == ["model.offensive"]


def test_velocity_limits_say_how_far_counting_must_go(default_rules: RuleSet) -> None:
    """Each window's limit is the largest threshold on it plus one: enough for every rule to decide."""
    assert default_rules.velocity_limits == {(LISTING, 3600): 31, (LISTING, 86400): 21, (MESSAGE, 600): 61}
