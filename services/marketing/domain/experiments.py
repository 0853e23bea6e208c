"""Experiments: weighted variants, deterministic hash assignment, the global holdout, and
the assembly of results per variant.

Assignment is a pure function of the experiment and the user id, so every process (and
every language, see services/marketing/testdata/assignment_vectors.json) agrees on it. The
hash, the bucket mapping and the statistics are specified in docs/marketing-experiments.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from libs.errors import FieldViolation, InvalidArgument, Violations
from services.marketing.domain.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SRM_THRESHOLD,
    Comparison,
    SampleRatioCheck,
    VariantCounts,
    compare,
    sample_ratio_mismatch,
)

BUCKETS = 10_000
"""Users hash into this many buckets; one bucket is one basis point of traffic."""
MAX_VARIANTS = 20
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""Ids, salts and variant names: no ':' so the hash input splits one way only."""


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment and its share of traffic, as a positive integer weight."""

    name: str
    weight: int


@dataclass(frozen=True)
class Experiment:
    """An experiment's assignment rules: which variants, in what proportions, which is control.

    ``salt`` is part of the hash input: a new salt reshuffles every user, which is how an
    experiment is restarted without carrying users over from an earlier run.
    """

    experiment_id: str
    salt: str
    variants: tuple[Variant, ...]
    control: str

    def __post_init__(self) -> None:
        validate_experiment(self)

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The variants' names, in the order that lays out their buckets."""
        return tuple(variant.name for variant in self.variants)


@dataclass(frozen=True)
class BucketRange:
    """The half-open range of buckets ``[start, end)`` that a variant receives."""

    variant: str
    start: int
    end: int

    @property
    def share(self) -> float:
        """The fraction of traffic the variant actually receives (what SRM expects)."""
        return (self.end - self.start) / BUCKETS


@dataclass(frozen=True)
class VariantResult:
    """One variant's numbers; ``comparison`` is against the control (``None`` for the control)."""

    name: str
    is_control: bool
    exposures: int
    conversions: int
    rate: float | None
    comparison: Comparison | None


@dataclass(frozen=True)
class ExperimentResults:
    """Every variant's results, in the experiment's order, and the sample-ratio check."""

    experiment_id: str
    confidence: float
    variants: tuple[VariantResult, ...]
    sample_ratio: SampleRatioCheck


def validate_experiment(experiment: Experiment) -> None:
    """Refuse a malformed experiment, naming the contract's field paths (``experiment.…``)."""
    problems = Violations()
    _check_name(problems, experiment.experiment_id, "experiment.experiment_id")
    _check_name(problems, experiment.salt, "experiment.salt")
    _check_variants(problems, experiment.variants)
    if experiment.control not in {variant.name for variant in experiment.variants}:
        problems.add("experiment.control", "must be the name of one of the variants")
    problems.raise_if_any("the experiment has invalid fields")


def validate_confidence(confidence: float) -> None:
    """Refuse a confidence level outside (0.5, 1) — below one half an interval says nothing."""
    if not 0.5 < confidence < 1.0:
        raise InvalidArgument(
            "the confidence level is out of range", [FieldViolation("confidence", "must be strictly between 0.5 and 1")]
        )


def _check_name(problems: Violations, value: str, path: str) -> None:
    """An id, salt or variant name: 1-64 of letters, digits, '_', '.' and '-'."""
    if not value:
        problems.add(path, "is required")
    elif len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        problems.add(path, f"at most {MAX_NAME_LENGTH} of letters, digits, '_', '.' and '-'")


def _check_variants(problems: Violations, variants: Sequence[Variant]) -> None:
    """At least two, unique names, positive integer weights that fit in the buckets."""
    if not 2 <= len(variants) <= MAX_VARIANTS:
        problems.add("experiment.variants", f"between 2 and {MAX_VARIANTS} variants are needed")
    first_index: dict[str, int] = {}
    for index, variant in enumerate(variants):
        path = f"experiment.variants[{index}]"
        _check_name(problems, variant.name, f"{path}.name")
        if variant.name in first_index:
            problems.add(f"{path}.name", f"must be unique; variants[{first_index[variant.name]}] has it too")
        first_index.setdefault(variant.name, index)
        if isinstance(variant.weight, bool) or not isinstance(variant.weight, int) or variant.weight < 1:
            problems.add(f"{path}.weight", "must be a positive integer")
    weights = [v.weight for v in variants if isinstance(v.weight, int) and v.weight > 0]
    if sum(weights) > BUCKETS:
        problems.add("experiment.variants", f"the weights must add up to at most {BUCKETS}")


def assignment_bucket(experiment_id: str, salt: str, user_id: str) -> int:
    """The user's bucket in ``[0, 10000)``: the first 8 bytes of
    SHA-256(UTF-8 of ``"assign:{salt}:{experiment_id}:{user_id}"``), big-endian, mod 10000.
    """
    return _bucket(f"assign:{salt}:{experiment_id}:{user_id}")


def holdout_bucket(holdout_salt: str, user_id: str) -> int:
    """The user's holdout bucket: as `assignment_bucket`, over ``"holdout:{salt}:{user_id}"``.

    Its own prefix keeps it independent of every experiment's assignment.
    """
    return _bucket(f"holdout:{holdout_salt}:{user_id}")


def _bucket(key: str) -> int:
    """64 bits of SHA-256 reduced mod 10000 (the modulo bias is below 1e-15)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_holdout(user_id: str, holdout_salt: str, holdout_bps: int) -> bool:
    """Whether the user is in the global holdout, which gets no campaign, incentive or
    experiment: true for the ``holdout_bps`` basis points of buckets ``[0, holdout_bps)``.
    """
    if not 0 <= holdout_bps <= BUCKETS:
        raise ValueError(f"holdout_bps must be between 0 and {BUCKETS}, got {holdout_bps}")
    if not holdout_salt or not _NAME.fullmatch(holdout_salt):
        raise ValueError("the holdout salt must be letters, digits, '_', '.' and '-'")
    return holdout_bucket(holdout_salt, user_id) < holdout_bps


def bucket_ranges(experiment: Experiment) -> tuple[BucketRange, ...]:
    """Lay the variants out over the buckets, in order, in proportion to their weights.

    Variant ``j`` ends at ``floor(10000 · C_j / W)`` where ``C_j`` is the sum of the
    weights up to and including ``j`` and ``W`` their total: exact integer arithmetic, each
    variant within one bucket of its exact share (1:1:1 gives 3333, 3333, 3334), and at
    least one bucket each since ``W <= 10000``.
    """
    total = sum(variant.weight for variant in experiment.variants)
    ranges: list[BucketRange] = []
    cumulative = 0
    start = 0
    for variant in experiment.variants:
        cumulative += variant.weight
        end = BUCKETS * cumulative // total
        ranges.append(BucketRange(variant.name, start, end))
        start = end
    return tuple(ranges)


def variant_for_bucket(experiment: Experiment, bucket: int) -> str:
    """The variant whose range holds ``bucket``."""
    for bucket_range in bucket_ranges(experiment):
        if bucket < bucket_range.end:
            return bucket_range.variant
    raise ValueError(f"bucket {bucket} is outside [0, {BUCKETS})")


def assign(experiment: Experiment, user_id: str) -> str:
    """The variant the hash gives ``user_id`` under the experiment's current weights.

    This is the assignment for a user seen for the first time; see `sticky_variant`.
    """
    if not user_id:
        raise InvalidArgument("a user id is needed to assign a variant", [FieldViolation("user_id", "is required")])
    return variant_for_bucket(experiment, assignment_bucket(experiment.experiment_id, experiment.salt, user_id))


def sticky_variant(experiment: Experiment, user_id: str, stored: str | None) -> str:
    """The user's variant: the stored first assignment wins, else the hash decides.

    A stored assignment is kept even when the weights changed since and the hash would now
    say otherwise, so nobody switches arms mid-experiment. The caller stores the result
    when ``stored`` was ``None``. (Changing weights mid-experiment makes the exposures stop
    matching the allocation: the sample-ratio check will flag it.)
    """
    return stored if stored is not None else assign(experiment, user_id)


def results(
    experiment: Experiment,
    counts: Mapping[str, VariantCounts],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    srm_threshold: float = DEFAULT_SRM_THRESHOLD,
) -> ExperimentResults:
    """Each variant's exposures, conversions and rate, its comparison with the control, and
    the sample-ratio check against the buckets each variant actually receives.

    A variant missing from ``counts`` had no exposures; a name in ``counts`` that is not a
    variant of the experiment is a caller error (`ValueError`). A ``confidence`` outside
    (0.5, 1) is `InvalidArgument` on the request's ``confidence``.
    """
    validate_confidence(confidence)
    unknown = sorted(set(counts) - set(experiment.variant_names))
    if unknown:
        raise ValueError(f"counts name variants the experiment does not have: {unknown}")
    empty = VariantCounts(0, 0)
    control_counts = counts.get(experiment.control, empty)
    rows: list[VariantResult] = []
    for name in experiment.variant_names:
        variant_counts = counts.get(name, empty)
        is_control = name == experiment.control
        comparison = None if is_control else compare(control_counts, variant_counts, confidence)
        rows.append(
            VariantResult(
                name, is_control, variant_counts.exposures, variant_counts.conversions, variant_counts.rate, comparison
            )
        )
    shares = [bucket_range.share for bucket_range in bucket_ranges(experiment)]
    srm = sample_ratio_mismatch([row.exposures for row in rows], shares, srm_threshold)
    return ExperimentResults(experiment.experiment_id, confidence, tuple(rows), srm)
